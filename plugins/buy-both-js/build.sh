#!/usr/bin/env bash
# Build the buy-both-js strategy component: build.sh OUTDIR -> OUTDIR/buy-both-js.wasm
set -euo pipefail

if [ "$#" -ne 1 ]; then
  echo "usage: $0 OUTDIR" >&2
  exit 2
fi

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WIT="$(cd "$HERE/../../wit" && pwd)"
mkdir -p "$1"
OUTDIR="$(cd "$1" && pwd)"
OUT="$OUTDIR/buy-both-js.wasm"
TMP="$OUT.tmp"

cd "$HERE"

# Install the pinned toolchain when node_modules is missing or older than the lock file.
if [ ! -x node_modules/.bin/componentize-js ] \
   || [ ! -f node_modules/.package-lock.json ] \
   || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi

# Skip the rebuild when the output is newer than every input.
if [ -f "$OUT" ]; then
  stale=0
  for src in plugin.js rule.js build.sh package-lock.json "$WIT"/*.wit; do
    if [ "$src" -nt "$OUT" ]; then stale=1; break; fi
  done
  if [ "$stale" -eq 0 ]; then
    echo "buy-both-js: $OUT is up to date"
    exit 0
  fi
fi

# Every optional WASI feature disabled: the component imports only the world's
# own `doubletime:strategy/host` interface. (componentize-js is called directly:
# `jco componentize` fails on some --wit paths inside its sandboxed wasm-tools.)
rm -f "$TMP"
node_modules/.bin/componentize-js plugin.js \
  --wit "$WIT" \
  --world-name strategy \
  --disable stdio random clocks http fetch-event \
  --out "$TMP"
mv -f "$TMP" "$OUT"
echo "buy-both-js: built $OUT"
