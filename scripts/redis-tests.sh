#!/usr/bin/env bash
# The cross-process tests (feature `redis`): installs redis-server with apt where missing, then
# runs tests/cluster.rs, which starts its own redis-server on 127.0.0.1 (and restarts it
# mid-test) and stops it afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
  echo "installing redis-server (apt)"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q redis-server
  # Debian starts a system service on install; the tests run their own server.
  $SUDO service redis-server stop >/dev/null 2>&1 || true
fi

cargo test --features redis --test cluster
