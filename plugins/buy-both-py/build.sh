#!/usr/bin/env bash
# Build the buy-both-py strategy component: ./build.sh OUTDIR -> OUTDIR/buy-both-py.wasm
# Works from any cwd. Installs componentize-py (pinned) into ./.venv on first use.
set -euo pipefail

CPY_VERSION="0.25.1"
NAME="buy-both-py"

if [[ $# -ne 1 ]]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WIT_DIR="$(cd "$HERE/../../wit" && pwd)"
mkdir -p "$1"
OUTDIR="$(cd "$1" && pwd)"
OUT="$OUTDIR/$NAME.wasm"
TMP="$OUTDIR/$NAME.wasm.tmp"
SOURCES=("$HERE/app.py" "$HERE/rule.py" "$WIT_DIR"/*.wit)

# Skip if the output is newer than every source.
if [[ -f "$OUT" ]]; then
    stale=0
    for s in "${SOURCES[@]}"; do
        if [[ "$s" -nt "$OUT" ]]; then stale=1; break; fi
    done
    if [[ $stale -eq 0 ]]; then
        echo "$NAME: $OUT is up to date"
        exit 0
    fi
fi

# componentize-py, pinned, in a private venv.
VENV="$HERE/.venv"
CPY="$VENV/bin/componentize-py"
if ! { [[ -x "$CPY" ]] && [[ "$("$CPY" --version 2>/dev/null)" == "componentize-py $CPY_VERSION" ]]; }; then
    PY="$(command -v python3 || command -v python)"
    [[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "componentize-py==$CPY_VERSION"
fi

# Stage only the app sources: componentize-py bundles the Python path it is
# given, and the plugin folder also holds .venv and the tests.
STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE" "$TMP"' EXIT
cp "$HERE/app.py" "$HERE/rule.py" "$STAGE/"

# Run from the staging dir with no VIRTUAL_ENV so nothing else is picked up.
(
    cd "$STAGE"
    env -u VIRTUAL_ENV "$CPY" -q -d "$WIT_DIR" -w strategy \
        componentize -p "$STAGE" app -o "$TMP"
)
mv -f "$TMP" "$OUT"
echo "$NAME: built $OUT ($(stat -c %s "$OUT") bytes)"
