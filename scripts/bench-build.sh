#!/usr/bin/env bash
# Benchmark of `hoist build` against `tar | pigz -p2` and `tar | zstd -T2` on the same ~1 GiB
# tree: four large incompressible files and 20,000 small text files, generated the same way on
# every run. Prints a Markdown table (median of RUNS runs: seconds, MB/s, output size, peak RSS).
#
#   scripts/bench-build.sh            # RUNS=5 by default; BENCH_DIR=target/bench
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
BENCH_DIR=${BENCH_DIR:-target/bench}
TREE=$BENCH_DIR/tree
OUT=$BENCH_DIR/out

for tool in pigz zstd /usr/bin/time openssl python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install pigz zstd time openssl python3" >&2; exit 1; }
done
cargo build --release --quiet
HOIST=$PWD/target/release/hoist

if [ ! -f "$TREE/.complete" ]; then
  rm -rf "$TREE" && mkdir -p "$TREE/blobs" "$TREE/src"
  # Incompressible data, deterministic: AES-CTR keystream of a fixed key.
  for i in 1 2 3 4; do
    head -c $((224 << 20)) /dev/zero |
      openssl enc -aes-128-ctr -nosalt -K 000102030405060708090a0b0c0d0e0f -iv 0000000000000000000000000000000$i \
      > "$TREE/blobs/data$i.bin"
  done
  python3 - "$TREE/src" <<'PY'
import os, random, sys
root = sys.argv[1]
rng = random.Random(42)
words = [''.join(rng.choice('abcdefghijklmnopqrstuvwxyz') for _ in range(rng.randint(2, 10))) for _ in range(3000)]
for i in range(20000):
    d = os.path.join(root, f"pkg{i % 200:03d}", f"mod{i % 7}")
    os.makedirs(d, exist_ok=True)
    lines = []
    for _ in range(rng.randint(40, 160)):
        lines.append(' ' * rng.choice([0, 4, 8]) + ' '.join(rng.choice(words) for _ in range(rng.randint(3, 12))))
    with open(os.path.join(d, f"file{i}.txt"), 'w') as f:
        f.write('\n'.join(lines) + '\n')
PY
  touch "$TREE/.complete"
fi
INPUT_BYTES=$(du -sb --exclude=.complete "$TREE" | cut -f1)
cat "$TREE"/blobs/* > /dev/null  # warm the page cache for every contender alike

# measure NAME OUTPUT_FILE COMMAND...: appends "seconds rss_kib bytes" to $OUT/NAME.runs
measure() {
  local name=$1 output=$2; shift 2
  rm -rf "$OUT/result" && mkdir -p "$OUT/result"
  sync  # start every contender with no dirty pages waiting to be written
  /usr/bin/time -f '%e %M' -o "$OUT/time" "$@" > /dev/null
  local bytes
  bytes=$(du -sb "$output" | cut -f1)
  echo "$(cat "$OUT/time") $bytes" >> "$OUT/$name.runs"
}

rm -rf "$OUT" && mkdir -p "$OUT"
for run in $(seq "$RUNS"); do
  echo "run $run/$RUNS" >&2
  measure hoist-gzip "$OUT/result/layout/blobs" "$HOIST" build --platform linux/amd64 --layer "$TREE:/data/" --exclude .complete --output "oci:$OUT/result/layout"
  measure pigz "$OUT/result/out.tar.gz" bash -c "tar -C '$TREE' --exclude .complete -cf - . | pigz -p2 -6 > '$OUT/result/out.tar.gz'"
  measure hoist-zstd "$OUT/result/layout/blobs" "$HOIST" build --platform linux/amd64 --layer "$TREE:/data/" --exclude .complete --compression zstd --output "oci:$OUT/result/layout"
  measure zstd "$OUT/result/out.tar.zst" bash -c "tar -C '$TREE' --exclude .complete -cf - . | zstd -q -3 -T2 > '$OUT/result/out.tar.zst'"
done

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo
echo "Input: $INPUT_BYTES bytes ($(find "$TREE" -type f | wc -l) files), $RUNS runs, median; $(nproc) cores."
echo
echo "| contender | seconds | MB/s | output bytes | peak RSS MiB |"
echo "|---|---:|---:|---:|---:|"
for name in hoist-gzip pigz hoist-zstd zstd; do
  seconds=$(cut -d' ' -f1 "$OUT/$name.runs" | median)
  rss=$(cut -d' ' -f2 "$OUT/$name.runs" | median)
  bytes=$(cut -d' ' -f3 "$OUT/$name.runs" | median)
  awk -v n="$name" -v s="$seconds" -v r="$rss" -v b="$bytes" -v i="$INPUT_BYTES" \
    'BEGIN { printf "| %s | %.2f | %.0f | %d | %.1f |\n", n, s, i / s / 1e6, b, r / 1024 }'
done
