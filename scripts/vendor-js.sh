#!/usr/bin/env bash
# Vendor the dashboard's JavaScript from the npm registry: htmx and uPlot, pinned.
#
#   bash scripts/vendor-js.sh           fetch the pinned packages, verify, copy into place
#   bash scripts/vendor-js.sh --check   verify the files already in place (offline)
#
# Each file taken must match the SHA-256 recorded below, or nothing is copied and the
# script exits non-zero. To move to a new version: change the version, run once, read the
# mismatch it reports, review the upstream diff, then record the new hashes here and in
# src/modelpact/dashboard/static/vendor/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

HTMX_VERSION=4.0.1    # npm package htmx.org
UPLOT_VERSION=1.6.32  # npm package uplot
DEST=src/modelpact/dashboard/static/vendor

# vendored name | path inside the npm tarball | SHA-256
FILES=(
  "htmx.min.js|htmx.org-${HTMX_VERSION}/package/dist/htmx.min.js|a0abb04f2f45a1f89d1d4844023245537e5e6014c87b144553e0607b4cc32130"
  "htmx.LICENSE|htmx.org-${HTMX_VERSION}/package/LICENSE|d3d2456f76414f2456104660ebd65aff1c04cd7966b942bdabd63f3cdb316a38"
  "uPlot.iife.min.js|uplot-${UPLOT_VERSION}/package/dist/uPlot.iife.min.js|19c8d4c6ad88929a79f4ae49d6f7161566dfd0ba3d15cc495e974f787eb78f1f"
  "uPlot.min.css|uplot-${UPLOT_VERSION}/package/dist/uPlot.min.css|df630c6a8d6f8eeaff264b50f73ce5b114f646ffd9a0bb74f049b0a00135fa04"
  "uPlot.LICENSE|uplot-${UPLOT_VERSION}/package/LICENSE|8f989229699b4fe2f1a0432d0e9edc338a8a911e250e2d1b01ecd770a5f5b1bd"
)

# verify DIR SOURCE_FIELD: check every file (named by field 1 or 2 of FILES) under DIR.
verify() {
  local dir=$1 field=$2 entry name path want got failed=0
  for entry in "${FILES[@]}"; do
    IFS='|' read -r name path want <<<"$entry"
    local file="$dir/$name"
    [[ $field == 2 ]] && file="$dir/$path"
    if [[ ! -f $file ]]; then
      echo "vendor-js: missing $file" >&2
      failed=1
      continue
    fi
    got=$(sha256sum "$file" | cut -d' ' -f1)
    if [[ $got != "$want" ]]; then
      echo "vendor-js: SHA-256 mismatch for $name: expected $want, got $got" >&2
      failed=1
    fi
  done
  return "$failed"
}

if [[ ${1:-} == --check ]]; then
  verify "$DEST" 1
  echo "vendor-js: $DEST matches the recorded SHA-256"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

(cd "$work" && npm pack --silent "htmx.org@${HTMX_VERSION}" "uplot@${UPLOT_VERSION}" >/dev/null)
for tarball in "htmx.org-${HTMX_VERSION}" "uplot-${UPLOT_VERSION}"; do
  mkdir "$work/$tarball"
  tar -xzf "$work/$tarball.tgz" -C "$work/$tarball"
done

# Verify in the scratch folder first, so a mismatch leaves the vendored files untouched.
verify "$work" 2

mkdir -p "$DEST"
for entry in "${FILES[@]}"; do
  IFS='|' read -r name path _ <<<"$entry"
  cp "$work/$path" "$DEST/$name"
done
verify "$DEST" 1
echo "vendor-js: htmx.org@${HTMX_VERSION} and uplot@${UPLOT_VERSION} vendored into $DEST"
