#!/usr/bin/env bash
# Benchmark of the first push of a two-platform image, hoist against crane and skopeo (issue 23).
#
# The image, in an OCI layout, built by hoist, is the issue's: an index of linux/amd64 and
# linux/arm64, each with one 383 MB incompressible layer (different bytes per platform) and its
# config (4 blobs, 2 manifests, the index: crane pushes it in the issue's 23 requests).
# SMALL_LAYERS=1 adds to each platform a small layer of its own (1 MiB) and one both share
# (2 MiB): 7 blobs (3 blobs more, so about 10 requests more for each tool). Each run starts a fresh
# loopback docker-registry for each tool (empty storage) and times the first push of the index
# under a tag. Prints a Markdown table of medians over RUNS runs: wall seconds, CPU seconds
# (user + sys, GNU time), requests the registry served (its access log) and peak RSS; then,
# from the first run, the registry's requests per tool grouped by method and path (digests,
# upload ids and query strings replaced by placeholders). Every tool's push is checked to
# leave the tag on the layout's index digest.
#
#   scripts/bench-push.sh      # RUNS=3; BENCH_DIR=target/bench-push; TOOLS="hoist crane skopeo"; SMALL_LAYERS=0
#   HOIST_FLAGS="--chunk-size 1G" scripts/bench-push.sh     # extra flags for hoist push
#
# crane is looked for at $CRANE, else target/tools/bin/crane, else on PATH. When absent its row
# is skipped with a line saying how to build it: scripts/build-crane.sh SOURCE, where SOURCE is
# a git clone of github.com/google/go-containerregistry with its tags or the v0.16.1 source
# tarball (crane v0.16.1 vendors its dependencies and builds offline with Debian's golang-go).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
BENCH_DIR=${BENCH_DIR:-target/bench-push}
TOOLS=${TOOLS:-hoist crane skopeo}
SMALL_LAYERS=${SMALL_LAYERS:-0}
HOIST_FLAGS=${HOIST_FLAGS:-}
read -r -a HOIST_ARGS <<< "$HOIST_FLAGS"
TAG=v1
LAYER_BYTES=383000000
for tool in docker-registry skopeo /usr/bin/time openssl python3 curl; do
  command -v "$tool" >/dev/null ||
    { echo "missing $tool: apt-get install docker-registry skopeo time openssl python3 curl" >&2; exit 1; }
done
cargo build --release --locked --quiet
HOIST=$PWD/target/release/hoist
CRANE=${CRANE:-$PWD/target/tools/bin/crane}
[ -x "$CRANE" ] || CRANE=$(command -v crane || true)
if [ -z "$CRANE" ] && [[ " $TOOLS " == *" crane "* ]]; then
  echo "crane skipped: not built. Build it with: scripts/build-crane.sh SOURCE (a clone of github.com/google/go-containerregistry with tag v0.16.1, or its v0.16.1 source tarball; needs golang-go)" >&2
  TOOLS=${TOOLS//crane/}
fi
BENCH_DIR=$(mkdir -p "$BENCH_DIR" && cd "$BENCH_DIR" && pwd)
LAYOUT=$BENCH_DIR/layout-small$SMALL_LAYERS

# keystream SEED BYTES: incompressible and deterministic (AES-CTR keystream of a fixed key).
keystream() {
  head -c "$2" /dev/zero |
    openssl enc -aes-128-ctr -nosalt -K 000102030405060708090a0b0c0d0e0f -iv "$(printf '%032x' "$1")"
}
if [ ! -f "$LAYOUT/index.json" ]; then
  echo "building the image (two platforms, 2 x $LAYER_BYTES bytes of layer data)" >&2
  rm -rf "$BENCH_DIR/src" "$LAYOUT"
  mkdir -p "$BENCH_DIR/src/shared"
  seed=1
  for arch in amd64 arm64; do
    mkdir -p "$BENCH_DIR/src/$arch/big" "$BENCH_DIR/src/$arch/small"
    keystream $seed $LAYER_BYTES > "$BENCH_DIR/src/$arch/big/data.bin"
    keystream $((seed + 1)) $((1 << 20)) > "$BENCH_DIR/src/$arch/small/part.bin"
    seed=$((seed + 2))
  done
  keystream $seed $((2 << 20)) > "$BENCH_DIR/src/shared/shared.bin"
  small=()
  [ "$SMALL_LAYERS" = 1 ] &&
    small=(--layer "$BENCH_DIR/src/shared:/shared/" --layer "$BENCH_DIR/src/{arch}/small:/small/")
  XDG_CACHE_HOME=$BENCH_DIR/cache "$HOIST" build -q --platform linux/amd64 --platform linux/arm64 --compression gzip \
    --layer "$BENCH_DIR/src/{arch}/big:/data/" "${small[@]}" --output "oci:$LAYOUT:$TAG" > /dev/null
  rm -rf "$BENCH_DIR/src" "$BENCH_DIR/cache" # the layout is all the runs need
fi
INDEX_DIGEST=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"])' "$LAYOUT/index.json")
BLOBS=$(find "$LAYOUT/blobs/sha256" -type f | wc -l)
IMAGE_BYTES=$(du -sb "$LAYOUT/blobs" | cut -f1)

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
REG=127.0.0.1:$PORT
REGISTRY_PID=""
start_registry() {
  stop_registry
  rm -rf "$BENCH_DIR/registry" && mkdir -p "$BENCH_DIR/registry"
  cat > "$BENCH_DIR/registry/config.yml" <<YAML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $BENCH_DIR/registry/data
http:
  addr: $REG
YAML
  env -u REGISTRY_HTTP_ADDR docker-registry serve "$BENCH_DIR/registry/config.yml" > "$BENCH_DIR/registry/log" 2>&1 &
  REGISTRY_PID=$!
  for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && return; sleep 0.1; done
  echo "registry did not start" >&2; exit 1
}
stop_registry() {
  [ -n "$REGISTRY_PID" ] || return 0
  kill "$REGISTRY_PID" 2>/dev/null || true; wait "$REGISTRY_PID" 2>/dev/null || true; REGISTRY_PID=""
  rm -rf "$BENCH_DIR/registry/data" # the image it got: 766 MB
}
trap stop_registry EXIT
# Access-log lines, one per request served: `... "METHOD /path HTTP/1.1" STATUS ...`.
requests() { grep -c 'HTTP/1.1" [0-9]' "$BENCH_DIR/registry/log" || true; }

# command_of TOOL: sets CMD to the tool's first push of the layout's image.
command_of() {
  case $1 in
    hoist) CMD=("$HOIST" push -q "${HOIST_ARGS[@]}" "oci:$LAYOUT:$TAG" "$REG/bench/app:$TAG") ;;
    # No --index: the layout's one entry is the image index, which crane then pushes as it is
    # (--index would wrap index.json itself in a new index).
    crane) CMD=("$CRANE" push "$LAYOUT" "$REG/bench/app:$TAG") ;;
    skopeo) CMD=(skopeo copy --quiet --all --dest-tls-verify=false "oci:$LAYOUT:$TAG" "docker://$REG/bench/app:$TAG") ;;
    *) echo "unknown tool $1 in TOOLS (hoist, crane, skopeo)" >&2; exit 1 ;;
  esac
}

# measure TOOL RUN: appends "wall cpu rss_kib requests" to $BENCH_DIR/TOOL.runs, keeps the log.
measure() {
  local tool=$1 run=$2
  start_registry
  export XDG_CACHE_HOME=$BENCH_DIR/cache # hoist's and skopeo's caches start empty every time
  rm -rf "$XDG_CACHE_HOME"
  sync
  command_of "$tool"
  /usr/bin/time -f "%e %U %S %M" -o "$BENCH_DIR/time" "${CMD[@]}" > /dev/null 2> "$BENCH_DIR/stderr" || { cat "$BENCH_DIR/stderr" >&2; exit 1; }
  local served; served=$(requests)
  mkdir -p "$BENCH_DIR/logs" && cp "$BENCH_DIR/registry/log" "$BENCH_DIR/logs/$tool-$run.log"
  local digest
  digest=$(curl -sfI -H 'Accept: application/vnd.oci.image.index.v1+json' "http://$REG/v2/bench/app/manifests/$TAG" |
    tr -d '\r' | awk -F': ' 'tolower($1) == "docker-content-digest" { print $2 }')
  [ "$digest" = "$INDEX_DIGEST" ] || { echo "$tool left $TAG on '$digest', not the layout's $INDEX_DIGEST" >&2; exit 1; }
  read -r wall user sys rss < "$BENCH_DIR/time"
  echo "$wall $(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }') $rss $served" >> "$BENCH_DIR/$tool.runs"
  unset XDG_CACHE_HOME
  stop_registry
}

rm -f "$BENCH_DIR"/*.runs && rm -rf "$BENCH_DIR/logs"
for run in $(seq "$RUNS"); do
  for tool in $TOOLS; do
    echo "run $run/$RUNS: $tool" >&2
    measure "$tool" "$run"
  done
done

version() {
  case $1 in
    hoist) echo "$("$HOIST" --version | awk '{ print $2 }')${HOIST_FLAGS:+ $HOIST_FLAGS}" ;;
    crane) "$CRANE" version ;;
    skopeo) skopeo --version | awk '{ print $3 }' ;;
  esac
}
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
echo
echo "Image: $IMAGE_BYTES bytes in $BLOBS blobs, manifests and index included (two platforms, each a $LAYER_BYTES-byte incompressible layer, gzip; SMALL_LAYERS=$SMALL_LAYERS); $RUNS runs, median; $(nproc) cores; docker-registry $(docker-registry --version | awk '{ print $3 }')."
echo
echo "| tool | wall s | CPU s | requests | peak RSS MiB |"
echo "|---|---:|---:|---:|---:|"
for tool in $TOOLS; do
  file=$BENCH_DIR/$tool.runs
  awk -v t="$tool $(version "$tool")" -v w="$(cut -d' ' -f1 "$file" | median)" -v c="$(cut -d' ' -f2 "$file" | median)" \
    -v r="$(cut -d' ' -f3 "$file" | median)" -v q="$(cut -d' ' -f4 "$file" | median)" \
    'BEGIN { printf "| %s | %.2f | %.2f | %d | %.1f |\n", t, w, c, q, r / 1024 }'
done

# Requests of run 1 per tool: method, path with placeholders, status; count.
echo
for tool in $TOOLS; do
  echo "$tool, run 1:"
  grep -o '"[A-Z]* /v2/[^ ]* HTTP/1.1" [0-9]*' "$BENCH_DIR/logs/$tool-1.log" |
    sed -E -e 's/sha256:[0-9a-f]{64}/<digest>/g' -e 's/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/<uuid>/g' \
      -e 's/\?[^ ]*/?<query>/' -e 's/ HTTP\/1.1"//' -e 's/^"//' |
    sort | uniq -c | sort -k2,2 -k3,3 | awk '{ printf "  %3d  %s\n", $1, substr($0, index($0, $2)) }'
done
