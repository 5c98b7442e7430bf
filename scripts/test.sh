#!/usr/bin/env bash
# Runs hoist's whole test suite. On a fresh Debian machine it first installs the real peers the
# integration tests check hoist against (umoci, skopeo, the docker CLI, docker-registry) and the
# tools they use.
set -euo pipefail
cd "$(dirname "$0")/.."

# command -> Debian package
declare -A packages=(
  [umoci]=umoci
  [skopeo]=skopeo
  [zstd]=zstd
  [gzip]=gzip
  [setpriv]=util-linux
  [mkfifo]=coreutils
  [docker-registry]=docker-registry
  [docker]=docker.io
)
missing=()
for command in "${!packages[@]}"; do
  command -v "$command" >/dev/null 2>&1 || missing+=("${packages[$command]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing test tools: ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

cargo test --locked "$@"
