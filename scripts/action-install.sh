#!/usr/bin/env bash
# The install step of hoist's GitHub Action (action.yml): downloads the release archive for
# this runner's OS and architecture, checks it against the release's SHA-256 file, unpacks it
# and puts hoist on PATH. Runs outside GitHub too (then it prints where hoist went).
#
# Environment (action.yml fills it from the inputs):
#   HOIST_VERSION      `latest` (default) or a release version, `1.2.3` or `v1.2.3`
#   HOIST_REPOSITORY   the GitHub repository that publishes the releases (default hoist-rs/hoist)
#   HOIST_TOKEN        optional token for the API call that finds the latest release
#   HOIST_INSTALL_DIR  where to unpack (default: $RUNNER_TEMP/hoist-VERSION-TARGET)
#   GITHUB_SERVER_URL, GITHUB_API_URL   set by the runner (GitHub Enterprise works as is)
#   GITHUB_PATH, GITHUB_OUTPUT          set by the runner; outputs: version, path
set -euo pipefail

fail() {
  echo "hoist action: $*" >&2
  exit 1
}

repository="${HOIST_REPOSITORY:-hoist-rs/hoist}"
server="${GITHUB_SERVER_URL:-https://github.com}"
api="${GITHUB_API_URL:-https://api.github.com}"
version="${HOIST_VERSION:-latest}"
curl_flags=(--fail --silent --show-error --location --retry 3)

case "$(uname -s)/$(uname -m)" in
  Linux/x86_64 | Linux/amd64) target=x86_64-unknown-linux-musl ;;
  Linux/aarch64 | Linux/arm64) target=aarch64-unknown-linux-musl ;;
  Darwin/x86_64) target=x86_64-apple-darwin ;;
  Darwin/arm64 | Darwin/aarch64) target=aarch64-apple-darwin ;;
  *) fail "no release binary for $(uname -s)/$(uname -m); install with: cargo install --locked --git $server/$repository hoist" ;;
esac

if [ "$version" = latest ]; then
  auth=()
  [ -z "${HOIST_TOKEN:-}" ] || auth=(--header "Authorization: Bearer $HOIST_TOKEN")
  # ${auth[@]+…}: an empty array is "unbound" to macOS's bash 3.2 under `set -u`.
  release="$(curl "${curl_flags[@]}" ${auth[@]+"${auth[@]}"} --header 'Accept: application/vnd.github+json' \
    "$api/repos/$repository/releases/latest")" || fail "cannot read the latest release of $repository"
  tag="$(printf '%s' "$release" | grep -o '"tag_name": *"[^"]*"' | head -n 1 | sed 's/.*"\([^"]*\)"$/\1/')"
  [ -n "$tag" ] || fail "the latest release of $repository has no tag name"
  version="${tag#v}"
fi
version="${version#v}"
case "$version" in
  [0-9]*.[0-9]*.[0-9]*) ;;
  *) fail "version must be \`latest\` or like 1.2.3, not \`$version\`" ;;
esac

name="hoist-$version-$target"
url="$server/$repository/releases/download/v$version/$name.tar.gz"
download="$(mktemp -d)"
trap 'rm -rf "$download"' EXIT
echo "hoist action: downloading $url" >&2
curl "${curl_flags[@]}" --output "$download/$name.tar.gz" "$url" || fail "cannot download $url"
curl "${curl_flags[@]}" --output "$download/$name.tar.gz.sha256" "$url.sha256" || fail "cannot download $url.sha256"

# The checksum file names this archive; its digest must be the archive's.
read -r expected listed <"$download/$name.tar.gz.sha256" || true
[ "${listed#\*}" = "$name.tar.gz" ] || fail "$url.sha256 is not about $name.tar.gz"
if command -v sha256sum >/dev/null 2>&1; then
  actual="$(sha256sum "$download/$name.tar.gz")"
else
  actual="$(shasum -a 256 "$download/$name.tar.gz")"
fi
actual="${actual%% *}"
[ "$actual" = "$expected" ] || fail "checksum mismatch for $name.tar.gz: expected $expected, got $actual"

dir="${HOIST_INSTALL_DIR:-${RUNNER_TEMP:-${TMPDIR:-/tmp}}/$name}"
mkdir -p "$dir"
tar -xzf "$download/$name.tar.gz" -C "$download"
[ -f "$download/$name/hoist" ] || fail "$name.tar.gz has no $name/hoist"
cp "$download/$name/hoist" "$download/$name/LICENSE" "$download/$name/README.md" "$dir/"
chmod 0755 "$dir/hoist"

reported="$("$dir/hoist" --version)" || fail "$dir/hoist does not run"
case "$reported" in
  *" $version") ;;
  *) fail "$dir/hoist says \`$reported\`, expected version $version" ;;
esac

if [ -n "${GITHUB_PATH:-}" ]; then
  echo "$dir" >>"$GITHUB_PATH"
fi
if [ -n "${GITHUB_OUTPUT:-}" ]; then
  {
    echo "version=$version"
    echo "path=$dir/hoist"
  } >>"$GITHUB_OUTPUT"
fi
echo "hoist action: installed $reported at $dir/hoist" >&2
echo "$dir/hoist"
