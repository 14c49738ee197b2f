#!/usr/bin/env bash
# Builds a JavaScript handler into a wasi:http/proxy component:
# `tests/wasm/build.sh OUT.wasm [SOURCE.js]` (handler.js here by default; bench/wasm.sh builds
# its own).
# Needs `npm ci` here first (the tools are pinned in package-lock.json). The WASI WIT files
# come from jco's package (its 0.2.12 copy, named as the 0.2.10 StarlingMonkey implements:
# the interfaces are the same within 0.2).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$(realpath -m "${1:?usage: build.sh OUT.wasm [SOURCE.js]}")"
source="$(realpath "${2:-$here/handler.js}")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/wit/deps"
cp "$here/wit/world.wit" "$work/wit/"
cp -r "$here/node_modules/@bytecodealliance/jco/lib/wit/builtin/0.2.12/." "$work/wit/deps/"
sed -i 's/@0\.2\.12/@0.2.10/g' "$work"/wit/deps/*/package.wit
node "$here/node_modules/@bytecodealliance/componentize-js/src/cli.js" "$source" \
  --wit "$work/wit" --world-name handler -o "$work/handler.wasm"
mv "$work/handler.wasm" "$out"
