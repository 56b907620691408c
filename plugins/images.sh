#!/usr/bin/env bash
# Builds (or lints) every image in the catalogue, plugins/catalogue/images.txt.
#   images.sh build DIST [FIXTURE...]  cargo's wasm profile, then each module pruned to its export list and
#                                      optimised (WASM_OPT_FLAGS) into DIST/<image>.wasm; the fixtures (modules
#                                      the e2e tests load, not images) are built beside the default images
#   images.sh clippy [PACKAGE...]      clippy for wasm32 on each build the images need, and on the packages
#                                      named (linted in the default images' run)
# Images with the crate's default features are built in one cargo run in the shared target dir; an image with a
# feature list of its own is built alone in target/images/<image>, so no other image's features unify into it
# (the suite embeds the plugin crates without their entry points) and a rebuild of one does not rebuild the other.
set -euo pipefail
cd "$(dirname "$0")/.."
target=wasm32-wasip1
mode=${1:?usage: images.sh build DIST [FIXTURE...] | clippy [PACKAGE...]}
shift
if [ "$mode" = build ]; then dist=${1:?usage: images.sh build DIST [FIXTURE...]}; shift; fi
fixtures=("$@")

# image crate features exports (the columns used here), one line per image.
mapfile -t lines < <(awk '!/^[[:space:]]*(#|$)/ {print $1, $2, $3, $4}' plugins/catalogue/images.txt)
[ ${#lines[@]} -gt 0 ] || { echo "images.sh: no image in plugins/catalogue/images.txt" >&2; exit 1; }

# The cargo runs: one for the default images and the fixtures, one per image with its own feature list.
shared=()
for p in "${fixtures[@]}"; do shared+=(-p "$p"); done
own=()
for line in "${lines[@]}"; do
  read -r image crate features _ <<< "$line"
  if [ "$features" = default ]; then
    shared+=(-p "$crate")
  else
    args="--target-dir target/images/$image -p $crate --no-default-features"
    [ "$features" = - ] || args+=" --features $features"
    own+=("$args")
  fi
done

# cargo_each SUBCOMMAND [OPTION...] [-- TOOL_ARG...]: each cargo run, the packages before any `--`.
cargo_each() {
  local before=() after=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do before+=("$1"); shift; done
  after=("$@")
  cargo "${before[@]}" --target $target "${shared[@]}" "${after[@]}"
  for args in "${own[@]}"; do
    # shellcheck disable=SC2086 # args is a list of words
    cargo "${before[@]}" --target $target $args "${after[@]}"
  done
}

if [ "$mode" = clippy ]; then
  cargo_each clippy -q -- -D warnings
  exit 0
fi
[ "$mode" = build ] || { echo "images.sh: unknown mode $mode" >&2; exit 2; }

cargo_each build --profile wasm
mkdir -p "$dist"
for line in "${lines[@]}"; do
  read -r image crate features exports <<< "$line"
  dir=target
  [ "$features" = default ] || dir=target/images/$image
  module=$dir/$target/wasm/${crate//-/_}.wasm exports=plugins/$crate/$exports out=$dist/$image.wasm
  # Pruned and optimised again only when cargo's module, the export list or the flags' sources changed.
  if [ "$out" -nt "$module" ] && [ "$out" -nt "$exports" ] && [ "$out" -nt Makefile ] && [ "$out" -nt "$0" ]; then
    printf '%-21s %7d bytes (up to date)\n' "$image" "$(stat -c %s "$out")"
    continue
  fi
  plugins/prune-exports.sh "$module" "$exports" "${module%.wasm}.pruned.wasm"
  # shellcheck disable=SC2086 # the flags are a list of words
  wasm-opt ${WASM_OPT_FLAGS:?set by the Makefile} "${module%.wasm}.pruned.wasm" -o "$out"
  printf '%-21s %7d bytes (cargo %d bytes)\n' "$image" "$(stat -c %s "$out")" "$(stat -c %s "$module")"
done
