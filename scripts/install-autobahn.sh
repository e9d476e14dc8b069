#!/bin/bash
# Installs the Autobahn WebSocket testsuite (wstest 0.8.2) under PREFIX without touching the
# system: PyPy 2.7 from Debian bullseye packages (extracted, not installed) + autobahntestsuite
# from PyPI (its releases are Python 2 code). About 1 minute on a fresh machine.
# Usage: install-autobahn.sh PREFIX     then: PREFIX/wstest -m fuzzingclient -s spec.json
set -euo pipefail
P=$(realpath -m "${1:?usage: setup.sh PREFIX}")
if [ -x "$P/wstest" ] && "$P/wstest" -a >/dev/null 2>&1; then echo "wstest already installed in $P"; exit 0; fi
mkdir -p "$P"/apt/lists/partial "$P"/apt/cache/archives/partial "$P"/debs "$P"/root "$P"/dl
# Use the same Debian mirror the machine already uses, with the bullseye suite.
mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[ -n "$mirror" ] || mirror=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list)
echo "deb $mirror bullseye main" > "$P/apt/sources.list"
A="-o Dir::Etc::SourceList=$P/apt/sources.list -o Dir::Etc::SourceParts=/dev/null -o Dir::State::Lists=$P/apt/lists -o Dir::Cache=$P/apt/cache"
apt-get $A update -q
(cd "$P/debs" && apt-get $A download pypy pypy-lib pypy-dev libffi7 libssl1.1 libssl-dev=1.1.1w-0+deb11u1)
for f in "$P"/debs/*.deb; do dpkg -x "$f" "$P/root"; done
python3 -m pip download -q --no-deps -d "$P/dl" pip==20.3.4 setuptools==44.1.1 wheel==0.37.1
export LD_LIBRARY_PATH=$P/root/usr/lib/x86_64-linux-gnu PYTHONUSERBASE=$P/user
PY=$P/root/usr/lib/pypy/bin/pypy-c
# --no-compile and --no-build-isolation: pip on PyPy 2.7 crashes writing .pyc files otherwise
$PY "$P"/dl/pip-20.3.4-py2.py3-none-any.whl/pip install -q --user --no-compile --no-index "$P"/dl/*.whl
$PY -m pip install -q --user --no-compile --no-warn-script-location incremental==21.3.0
CFLAGS="-I$P/root/usr/include -I$P/root/usr/include/x86_64-linux-gnu" LDFLAGS="-L$P/root/usr/lib/x86_64-linux-gnu" \
  $PY -m pip install -q --user --no-compile --no-build-isolation --no-warn-script-location Twisted==20.3.0 autobahntestsuite==0.8.2
cat > "$P/wstest" <<EOW
#!/bin/sh
export LD_LIBRARY_PATH=$P/root/usr/lib/x86_64-linux-gnu PYTHONUSERBASE=$P/user
exec $PY $P/user/bin/wstest "\$@"
EOW
chmod +x "$P/wstest"
"$P/wstest" -a 2>/dev/null | tail -1 || true
echo "wstest installed: $P/wstest"
