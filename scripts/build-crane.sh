#!/usr/bin/env bash
# Builds crane (go-containerregistry's CLI, a peer in scripts/bench-push.sh) from source, offline:
# the release's own vendor/ directory, Debian's Go (golang-go, 1.19), no module proxy.
#
#   scripts/build-crane.sh SOURCE     # CRANE_VERSION=v0.16.1 by default
#
# SOURCE is one of:
#   - a git directory of github.com/google/go-containerregistry (bare or a clone's .git) that
#     holds the tag $CRANE_VERSION;
#   - a tarball of that tag's tree (.tar, .tar.gz or .tgz, e.g. GitHub's
#     https://github.com/google/go-containerregistry/archive/refs/tags/v0.16.1.tar.gz);
#   - a directory holding that tree (go.mod at its top).
# Writes target/tools/bin/crane. Idempotent: does nothing when that binary already reports
# $CRANE_VERSION; otherwise builds it again.
set -euo pipefail
cd "$(dirname "$0")/.."
CRANE_VERSION=${CRANE_VERSION:-v0.16.1}
MODULE=github.com/google/go-containerregistry
OUT=$PWD/target/tools/bin/crane
WORK=$PWD/target/tools/crane-src

die() { echo "build-crane: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: scripts/build-crane.sh SOURCE (a git directory, tarball or source tree of $MODULE at $CRANE_VERSION)"
SOURCE=$1
[ -e "$SOURCE" ] || die "$SOURCE does not exist: give the path of a git directory, tarball or source tree of $MODULE $CRANE_VERSION"

if [ -x "$OUT" ] && [ "$("$OUT" version 2>/dev/null)" = "$CRANE_VERSION" ]; then
  echo "crane $CRANE_VERSION already built: $OUT"
  exit 0
fi
command -v go >/dev/null || die "no go on PATH: apt-get install golang-go (Debian's Go 1.19 builds crane $CRANE_VERSION)"

# Put the source tree in $WORK/tree (a fresh copy every time, so a half-extracted tree from an
# earlier failed run never gets built).
rm -rf "$WORK" && mkdir -p "$WORK/tree"
if [ -d "$SOURCE" ] && git --git-dir="$SOURCE" rev-parse --git-dir >/dev/null 2>&1; then
  git --git-dir="$SOURCE" rev-parse --verify --quiet "refs/tags/$CRANE_VERSION^{commit}" >/dev/null ||
    die "the git directory $SOURCE has no tag $CRANE_VERSION: fetch the tags of $MODULE, or set CRANE_VERSION to one it has"
  git --git-dir="$SOURCE" archive "$CRANE_VERSION" | tar -x -C "$WORK/tree"
elif [ -d "$SOURCE" ]; then
  [ -f "$SOURCE/go.mod" ] || die "$SOURCE is neither a git directory nor a source tree (no go.mod at its top)"
  cp -a "$SOURCE/." "$WORK/tree/"
elif [ -f "$SOURCE" ]; then
  # GitHub's tarballs hold one top directory (go-containerregistry-0.16.1/): strip it when all
  # entries are under one directory.
  tops=$(tar -tf "$SOURCE" | cut -d/ -f1 | sort -u) || die "$SOURCE is not a tar archive (.tar, .tar.gz or .tgz)"
  strip=0; [ "$(printf '%s\n' "$tops" | wc -l)" -eq 1 ] && [ "$tops" != go.mod ] && strip=1
  tar -x -f "$SOURCE" -C "$WORK/tree" --strip-components="$strip" || die "could not extract $SOURCE"
else
  die "$SOURCE is neither a directory nor a file"
fi

TREE=$WORK/tree
if ! [ -f "$TREE/go.mod" ] || ! head -n 1 "$TREE/go.mod" | grep -qx "module $MODULE"; then
  die "$SOURCE does not hold $MODULE (its go.mod names another module, or there is none)"
fi
[ -f "$TREE/vendor/modules.txt" ] ||
  die "$SOURCE has no vendor/ directory: this offline build needs a release that vendors its dependencies (v0.16.1 does)"
[ -f "$TREE/cmd/crane/main.go" ] || die "$SOURCE has no cmd/crane"

mkdir -p "$(dirname "$OUT")"
# Offline: dependencies from vendor/ only, no proxy, no checksum database; Go's caches inside
# target/ so the build leaves nothing elsewhere. CGO off: crane needs no C.
(cd "$TREE" &&
  GOFLAGS=-mod=vendor GOPROXY=off GONOSUMDB="*" GOSUMDB=off CGO_ENABLED=0 \
  GOCACHE=$WORK/gocache GOPATH=$WORK/gopath \
  go build -trimpath -ldflags "-X '$MODULE/cmd/crane/cmd.Version=$CRANE_VERSION'" -o "$OUT.tmp" ./cmd/crane) ||
  die "go build failed (go $(go env GOVERSION)); see the errors above"
mv "$OUT.tmp" "$OUT"
rm -rf "$TREE" "$WORK/gopath"
echo "built crane $("$OUT" version): $OUT"
