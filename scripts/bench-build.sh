#!/usr/bin/env bash
# Benchmark of `hoist build` against `tar | pigz -p2` and `tar | zstd -T2` on two trees made
# the same way on every run:
#
# - synthetic: four 224 MiB incompressible files and 20,000 small text files (1.06 GB);
# - real: 800 MiB of real files every Debian machine has: the regular files and symlinks of
#   /usr/lib/x86_64-linux-gnu, then /usr/share/doc, then /usr/bin, walked in sorted order, each
#   inode once, until 800 MiB of file data (shared libraries, static libraries, docs,
#   programs). The script prints a hash of the file list, so that two runs can be compared.
#
# For each tree and compression: hoist's first build (empty layer cache), its rebuild of the
# unchanged tree into a new layout (the cache filled by the first), and the peer. Prints a
# Markdown table: median of RUNS runs of wall seconds, CPU seconds (user + sys), throughput,
# output size and peak RSS; then hoist's first build against its peer, as the median of per-run
# ratios.
#
#   scripts/bench-build.sh            # RUNS=5 by default; BENCH_DIR=target/bench; TREES="real synthetic"
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
BENCH_DIR=${BENCH_DIR:-target/bench}
TREES=${TREES:-real synthetic}
OUT=$BENCH_DIR/out

if ! command -v pigz >/dev/null; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get install -y -qq pigz >/dev/null || { $sudo apt-get update -qq && $sudo apt-get install -y -qq pigz >/dev/null; }
fi
for tool in pigz zstd /usr/bin/time openssl python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install pigz zstd time openssl python3" >&2; exit 1; }
done
cargo build --release --locked --quiet
HOIST=$PWD/target/release/hoist

make_synthetic() {
  local tree=$1
  rm -rf "$tree" && mkdir -p "$tree/blobs" "$tree/src"
  # Incompressible data, deterministic: AES-CTR keystream of a fixed key.
  for i in 1 2 3 4; do
    head -c $((224 << 20)) /dev/zero |
      openssl enc -aes-128-ctr -nosalt -K 000102030405060708090a0b0c0d0e0f -iv 0000000000000000000000000000000$i \
      > "$tree/blobs/data$i.bin"
  done
  python3 - "$tree/src" <<'PY'
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
}

make_real() {
  local tree=$1
  rm -rf "$tree" && mkdir -p "$tree"
  python3 - "$tree" $((800 << 20)) <<'PY'
import hashlib, os, shutil, sys
dest, limit = sys.argv[1], int(sys.argv[2])
seen, total, listing = set(), 0, hashlib.sha256()
for root in ["/usr/lib/x86_64-linux-gnu", "/usr/share/doc", "/usr/bin"]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            target = dest + path
            if os.path.islink(path):
                os.makedirs(os.path.dirname(target), exist_ok=True)
                os.symlink(os.readlink(path), target)
            elif os.path.isfile(path) and total + st.st_size <= limit:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                shutil.copyfile(path, target)
                os.chmod(target, st.st_mode & 0o7777)
                total += st.st_size
            else:
                continue
            listing.update(os.fsencode(path) + b"\n")
with open(os.path.join(dest, ".list-sha256"), "w") as f:
    f.write(listing.hexdigest() + "\n")
PY
}

for tree in $TREES; do
  if [ ! -f "$BENCH_DIR/$tree/.complete" ]; then
    "make_$tree" "$BENCH_DIR/$tree"
    touch "$BENCH_DIR/$tree/.complete"
  fi
done

# measure NAME OUTPUT COMMAND...: appends "wall cpu rss_kib bytes" to $OUT/NAME.runs
measure() {
  local name=$1 output=$2; shift 2
  sync  # start every contender with no dirty pages waiting to be written
  /usr/bin/time -f '%e %U %S %M' -o "$OUT/time" "$@" > /dev/null
  local bytes
  bytes=$(du -sb "$output" | cut -f1)
  read -r wall user sys rss < "$OUT/time"
  echo "$wall $(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }') $rss $bytes" >> "$OUT/$name.runs"
}

rm -rf "$OUT" && mkdir -p "$OUT"
for run in $(seq "$RUNS"); do
  for tree in $TREES; do
    echo "run $run/$RUNS: $tree" >&2
    dir=$BENCH_DIR/$tree
    find "$dir" -type f -exec cat {} + > /dev/null  # warm the page cache for every contender alike
    for compression in gzip zstd; do
      rm -rf "$OUT/result" "$OUT/cache" && mkdir -p "$OUT/result" "$OUT/cache"
      build=(env XDG_CACHE_HOME="$PWD/$OUT/cache" "$HOIST" build --platform linux/amd64 --layer "$dir:/data/"
        --exclude .complete --exclude .list-sha256 --compression "$compression")
      measure "$tree hoist $compression first" "$OUT/result/first/blobs" "${build[@]}" --output "oci:$OUT/result/first"
      measure "$tree hoist $compression rebuild" "$OUT/result/again/blobs" "${build[@]}" --output "oci:$OUT/result/again"
      # The rebuild must name the same image as the first build.
      cmp -s "$OUT/result/first/index.json" "$OUT/result/again/index.json" || { echo "rebuild differs" >&2; exit 1; }
      rm -rf "$OUT/result"/*
      if [ "$compression" = gzip ]; then
        measure "$tree tar | pigz -p2 -6" "$OUT/result/out.tar.gz" bash -c \
          "tar -C '$dir' --sort=name --exclude .complete --exclude .list-sha256 -cf - . | pigz -p2 -6 > '$OUT/result/out.tar.gz'"
      else
        measure "$tree tar | zstd -3 -T2" "$OUT/result/out.tar.zst" bash -c \
          "tar -C '$dir' --sort=name --exclude .complete --exclude .list-sha256 -cf - . | zstd -q -3 -T2 > '$OUT/result/out.tar.zst'"
      fi
    done
  done
done

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo
for tree in $TREES; do
  dir=$BENCH_DIR/$tree
  bytes=$(find "$dir" -type f ! -name .complete ! -name .list-sha256 -printf '%s\n' | awk '{s += $1} END {print s}')
  files=$(find "$dir" -type f ! -name .complete ! -name .list-sha256 | wc -l)
  list=""
  [ -f "$dir/.list-sha256" ] && list=", file list sha256 $(cut -c1-16 "$dir/.list-sha256")…"
  echo "$tree: $bytes bytes in $files files$list; $RUNS runs, median; $(nproc) cores."
done
echo
echo "| tree | contender | seconds | CPU seconds | MB/s | output bytes | peak RSS MiB |"
echo "|---|---|---:|---:|---:|---:|---:|"
for tree in $TREES; do
  dir=$BENCH_DIR/$tree
  input=$(find "$dir" -type f ! -name .complete ! -name .list-sha256 -printf '%s\n' | awk '{s += $1} END {print s}')
  for name in "hoist gzip first" "hoist gzip rebuild" "tar | pigz -p2 -6" \
    "hoist zstd first" "hoist zstd rebuild" "tar | zstd -3 -T2"; do
    runs="$OUT/$tree $name.runs"
    seconds=$(cut -d' ' -f1 "$runs" | median)
    cpu=$(cut -d' ' -f2 "$runs" | median)
    rss=$(cut -d' ' -f3 "$runs" | median)
    bytes=$(cut -d' ' -f4 "$runs" | median)
    label=${name//|/\\|}
    awk -v t="$tree" -v n="$label" -v s="$seconds" -v c="$cpu" -v r="$rss" -v b="$bytes" -v i="$input" \
      'BEGIN { printf "| %s | `%s` | %.2f | %.2f | %.0f | %d | %.1f |\n", t, n, s, c, i / s / 1e6, b, r / 1024 }'
  done
done
# Speed against the peer, run by run (each run measures both within seconds of each other, so
# a ratio taken per run is less disturbed by other work on the machine than a ratio of medians).
echo
echo "| tree | hoist first build against its peer | speed-up, wall (median, range) | speed-up, CPU (median, range) |"
echo "|---|---|---:|---:|"
for tree in $TREES; do
  for pair in "gzip|tar | pigz -p2 -6" "zstd|tar | zstd -3 -T2"; do
    compression=${pair%%|*} peer=${pair#*|}
    python3 - "$tree" "$compression" "$peer" "$OUT/$tree hoist $compression first.runs" "$OUT/$tree $peer.runs" <<'PY'
import statistics, sys
tree, compression, peer, ours, theirs = sys.argv[1:]
rows = lambda path: [list(map(float, line.split())) for line in open(path)]
pairs = list(zip(rows(ours), rows(theirs)))
def cell(column):
    ratios = sorted(them[column] / us[column] for us, them in pairs)
    return f"{statistics.median(ratios):.2f}× ({ratios[0]:.2f}–{ratios[-1]:.2f})"
label = peer.replace("|", "\\|")
print(f"| {tree} | `hoist {compression}` against `{label}` | {cell(0)} | {cell(1)} |")
PY
  done
done
