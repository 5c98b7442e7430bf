#!/usr/bin/env bash
# Packs a hoist binary the way a release ships it:
#   OUT/hoist-VERSION-TARGET.tar.gz         hoist-VERSION-TARGET/{hoist,LICENSE,README.md}
#   OUT/hoist-VERSION-TARGET.tar.gz.sha256  its SHA-256 in `sha256sum` format
# VERSION comes from Cargo.toml. The release workflow (.github/workflows/release.yml) runs this
# for each target; run it here to get the same archive for this machine.
#
# usage: scripts/release-archive.sh [--binary PATH] [--target TRIPLE] [--out DIR]
#   --binary  a built hoist (default: `cargo build --release --locked [--target TRIPLE]`)
#   --target  the Rust target triple the binary is for (default: this machine's, from rustc)
#   --out     where the archive and checksum go (default: target/release-archive)
# Prints the archive's path.
set -euo pipefail

usage() {
  sed -n '8,12s/^# \{0,1\}//p' "$0" >&2
  exit 2
}

root="$(cd "$(dirname "$0")/.." && pwd)"
binary=""
target=""
out="$root/target/release-archive"
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) [ $# -ge 2 ] || usage; binary="$2"; shift 2 ;;
    --target) [ $# -ge 2 ] || usage; target="$2"; shift 2 ;;
    --out) [ $# -ge 2 ] || usage; out="$2"; shift 2 ;;
    -h | --help) usage ;;
    *) echo "release-archive.sh: unknown argument: $1" >&2; usage ;;
  esac
done

# The [package] version: the first `version = "…"` line of Cargo.toml.
version="$(sed -n 's/^version = "\([^"]*\)"$/\1/p' "$root/Cargo.toml" | head -n 1)"
[ -n "$version" ] || { echo "release-archive.sh: no version in Cargo.toml" >&2; exit 1; }

if [ -z "$target" ]; then
  target="$(rustc -vV | sed -n 's/^host: //p')"
  [ -n "$target" ] || { echo "release-archive.sh: cannot tell the host target from rustc -vV" >&2; exit 1; }
fi

if [ -z "$binary" ]; then
  if [ "$target" = "$(rustc -vV | sed -n 's/^host: //p')" ]; then
    (cd "$root" && cargo build --release --locked >&2)
    binary="$root/target/release/hoist"
  else
    (cd "$root" && cargo build --release --locked --target "$target" >&2)
    binary="$root/target/$target/release/hoist"
  fi
fi
if [ ! -f "$binary" ] || [ ! -x "$binary" ]; then
  echo "release-archive.sh: not an executable file: $binary" >&2
  exit 1
fi

name="hoist-$version-$target"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir "$stage/$name"
cp "$binary" "$stage/$name/hoist"
chmod 0755 "$stage/$name/hoist"
cp "$root/LICENSE" "$root/README.md" "$stage/$name/"
chmod 0644 "$stage/$name/LICENSE" "$stage/$name/README.md"

# Same files, same archive: sorted names, fixed times and owners (GNU tar on Linux; the BSD
# tar of macOS takes the owner flags and keeps the order of the list given).
archive="$out/$name.tar.gz"
if tar --version 2>/dev/null | grep -q 'GNU tar'; then
  tar -C "$stage" --sort=name --mtime='@0' --owner=0 --group=0 --numeric-owner \
    -cf - "$name" | gzip -n >"$archive"
else
  (cd "$stage" && tar --uid 0 --gid 0 --uname '' --gname '' \
    -cf - "$name/LICENSE" "$name/README.md" "$name/hoist") | gzip -n >"$archive"
fi

if command -v sha256sum >/dev/null 2>&1; then
  sum="$(sha256sum "$archive")"
else
  sum="$(shasum -a 256 "$archive")"
fi
echo "${sum%% *}  $name.tar.gz" >"$archive.sha256"
echo "$archive"
