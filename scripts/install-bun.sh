#!/usr/bin/env bash
# Installs Bun (its binary ships in the npm package @oven/bun-linux-x64) under target/bun, for
# the bench's fan-out baseline. Needs npm; the bench skips Bun when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
BUN=target/bun/node_modules/@oven/bun-linux-x64/bin/bun
if [ ! -x "$BUN" ]; then
  command -v npm >/dev/null || { echo "npm not found: the bench will skip Bun" >&2; exit 1; }
  mkdir -p target/bun
  npm install --no-audit --no-fund --prefix target/bun @oven/bun-linux-x64
fi
"$BUN" --version
