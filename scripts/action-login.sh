#!/usr/bin/env bash
# The login step of hoist's GitHub Action (action.yml): `hoist login` to HOIST_REGISTRY as
# HOIST_USERNAME with HOIST_PASSWORD, the password on stdin so it is never on a command line.
set -euo pipefail

: "${HOIST_REGISTRY:?the registry input is empty}"
[ -n "${HOIST_USERNAME:-}" ] || { echo "hoist action: input username is empty" >&2; exit 1; }
[ -n "${HOIST_PASSWORD:-}" ] || { echo "hoist action: input password is empty" >&2; exit 1; }
# Secrets are masked in logs already; a password given as a plain value is masked here.
echo "::add-mask::$HOIST_PASSWORD"
printf '%s\n' "$HOIST_PASSWORD" | hoist login -u "$HOIST_USERNAME" --password-stdin "$HOIST_REGISTRY"
