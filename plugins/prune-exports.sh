#!/usr/bin/env bash
# Removes the proxy-wasm callbacks a plugin does not implement from its module's exports.
# The Rust SDK exports every callback; Envoy calls each exported one on every request (response headers, body,
# log, done, ...), and each call into V8 costs CPU. A callback the module does not export is skipped by the host.
# Usage: prune-exports.sh IN.wasm KEEP_FILE OUT.wasm   (KEEP_FILE: one export name per line, # comments)
set -euo pipefail
in=$1 keep_file=$2 out=$3
mapfile -t keep < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$keep_file")
mapfile -t exports < <(wasm-objdump -x -j Export "$in" | sed -n 's/.*-> "\(.*\)"$/\1/p')
for k in "${keep[@]}"; do
  printf '%s\n' "${exports[@]}" | grep -qx "$k" || { echo "prune-exports: $in does not export $k" >&2; exit 1; }
done
graph=$(mktemp)
trap 'rm -f "$graph"' EXIT
{
  printf '[{"name":"host","root":true,"reaches":['
  sep=""; for k in "${keep[@]}"; do printf '%s"e_%s"' "$sep" "$k"; sep=","; done
  printf ']}'
  for e in "${exports[@]}"; do printf ',{"name":"e_%s","export":"%s"}' "$e" "$e"; done
  printf ']\n'
} > "$graph"
wasm-metadce --enable-bulk-memory --enable-sign-ext --enable-nontrapping-float-to-int --enable-mutable-globals \
  --enable-reference-types --enable-multivalue -f "$graph" "$in" -o "$out" >/dev/null
