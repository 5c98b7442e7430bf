#!/usr/bin/env bash
# Benchmark of `hoist push` against `skopeo copy`: a ~1 GiB image (one 960 MiB layer and
# several small ones) in an OCI layout, pushed to a fresh loopback docker-registry by each tool,
# alternating, RUNS times: first push, no-op re-push, push to a second repository (mounts,
# from what each tool remembers of the first push).
# Prints a Markdown table of medians: seconds, MB/s, requests the registry served, peak RSS.
#
#   scripts/bench-push.sh             # RUNS=3 by default; BENCH_DIR=target/bench-push
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
BENCH_DIR=${BENCH_DIR:-target/bench-push}
for tool in docker-registry skopeo /usr/bin/time openssl; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install docker-registry skopeo time openssl" >&2; exit 1; }
done
cargo build --release --quiet
HOIST=$PWD/target/release/hoist
BENCH_DIR=$(mkdir -p "$BENCH_DIR" && cd "$BENCH_DIR" && pwd)
LAYOUT=$BENCH_DIR/layout

if [ ! -f "$LAYOUT/index.json" ]; then
  rm -rf "$BENCH_DIR/src" && mkdir -p "$BENCH_DIR/src/big" "$BENCH_DIR/src/small"
  head -c $((960 << 20)) /dev/zero |
    openssl enc -aes-128-ctr -nosalt -K 000102030405060708090a0b0c0d0e0f -iv 00000000000000000000000000000009 \
    > "$BENCH_DIR/src/big/data.bin"
  for i in 1 2 3 4; do
    mkdir -p "$BENCH_DIR/src/small/$i"
    head -c $((i << 20)) /dev/zero | openssl enc -aes-128-ctr -nosalt -K 0f0e0d0c0b0a09080706050403020100 \
      -iv 0000000000000000000000000000000$i > "$BENCH_DIR/src/small/$i/part.bin"
  done
  "$HOIST" build -q --platform linux/amd64 --layer "$BENCH_DIR/src/big:/data/" \
    --layer "$BENCH_DIR/src/small/1:/s1/" --layer "$BENCH_DIR/src/small/2:/s2/" \
    --layer "$BENCH_DIR/src/small/3:/s3/" --layer "$BENCH_DIR/src/small/4:/s4/" \
    --no-index --output "oci:$LAYOUT:bench" > /dev/null
fi
IMAGE_BYTES=$(du -sb "$LAYOUT/blobs" | cut -f1)

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
REGISTRY_PID=""
start_registry() {
  rm -rf "$BENCH_DIR/registry" && mkdir -p "$BENCH_DIR/registry"
  cat > "$BENCH_DIR/registry/config.yml" <<YAML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $BENCH_DIR/registry/data
http:
  addr: 127.0.0.1:$PORT
YAML
  env -u REGISTRY_HTTP_ADDR docker-registry serve "$BENCH_DIR/registry/config.yml" > "$BENCH_DIR/registry/log" 2>&1 &
  REGISTRY_PID=$!
  for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && return; sleep 0.1; done
  echo "registry did not start" >&2; exit 1
}
stop_registry() { kill "$REGISTRY_PID" 2>/dev/null || true; wait "$REGISTRY_PID" 2>/dev/null || true; }
trap stop_registry EXIT
requests() { grep -c 'HTTP/1.1" [0-9]' "$BENCH_DIR/registry/log" || true; }

# measure NAME COMMAND...: appends "seconds rss_kib requests" to $BENCH_DIR/NAME.runs
measure() {
  local name=$1; shift
  local before; before=$(requests)
  sync
  /usr/bin/time -f "%e %M" -o "$BENCH_DIR/time" "$@" > /dev/null 2> "$BENCH_DIR/stderr" || { cat "$BENCH_DIR/stderr" >&2; exit 1; }
  echo "$(cat "$BENCH_DIR/time") $(( $(requests) - before ))" >> "$BENCH_DIR/$name.runs"
}

rm -f "$BENCH_DIR"/*.runs
SKOPEO=(skopeo copy --quiet --dest-tls-verify=false)
for run in $(seq "$RUNS"); do
  echo "run $run/$RUNS" >&2
  start_registry
  # A cache of hoist's own per run: the mount phase relies on hoist remembering where it
  # pushed each blob (no --mount-from), as skopeo relies on its blob-info cache.
  export XDG_CACHE_HOME=$BENCH_DIR/cache-$run
  rm -rf "$XDG_CACHE_HOME"
  measure hoist-first "$HOIST" push -q "oci:$LAYOUT:bench" "127.0.0.1:$PORT/bench/app:v1"
  measure hoist-again "$HOIST" push -q "oci:$LAYOUT:bench" "127.0.0.1:$PORT/bench/app:v1"
  measure hoist-mount "$HOIST" push -q "oci:$LAYOUT:bench" "127.0.0.1:$PORT/bench/other:v1"
  unset XDG_CACHE_HOME
  stop_registry
  start_registry
  measure skopeo-first "${SKOPEO[@]}" "oci:$LAYOUT:bench" "docker://127.0.0.1:$PORT/bench/app:v1"
  measure skopeo-again "${SKOPEO[@]}" "oci:$LAYOUT:bench" "docker://127.0.0.1:$PORT/bench/app:v1"
  measure skopeo-mount "${SKOPEO[@]}" "oci:$LAYOUT:bench" "docker://127.0.0.1:$PORT/bench/other:v1"
  stop_registry
done

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo
echo "Image: $IMAGE_BYTES bytes of blobs (one 960 MiB layer, four of 1-4 MiB, config); $RUNS runs, median; $(nproc) cores."
echo
echo "| phase | tool | seconds | MB/s | registry requests | peak RSS MiB |"
echo "|---|---|---:|---:|---:|---:|"
for phase in first again mount; do
  for tool in hoist skopeo; do
    file="$BENCH_DIR/$tool-$phase.runs"
    seconds=$(cut -d' ' -f1 "$file" | median)
    rss=$(cut -d' ' -f2 "$file" | median)
    reqs=$(cut -d' ' -f3 "$file" | median)
    awk -v p="$phase" -v t="$tool" -v s="$seconds" -v r="$rss" -v q="$reqs" -v b="$IMAGE_BYTES" \
      'BEGIN { printf "| %s | %s | %.2f | %.0f | %d | %.1f |\n", p, t, s, b / s / 1e6, q, r / 1024 }'
  done
done
