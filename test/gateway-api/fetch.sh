#!/usr/bin/env bash
# Fetches the Gateway API CRDs (standard and experimental channels) of the pinned version from the
# sigs.k8s.io/gateway-api Go module, through the Go module proxy, into .cache/gateway-api/<version>/
# (git-ignored), once. Prints the folder to use as GATEWAY_API_CRDS. Test-only: the product never
# installs the Gateway API (the implementation that serves it does).
set -euo pipefail
version=v1.6.3
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="$root/.cache/gateway-api/$version"
if [ -f "$out/standard/gateway.networking.k8s.io_httproutes.yaml" ] && [ -f "$out/experimental/gateway.networking.k8s.io_httproutes.yaml" ]; then
  echo "$out"; exit 0
fi
command -v go >/dev/null || { echo "Go is needed to fetch the Gateway API CRDs (or set GATEWAY_API_CRDS)" >&2; exit 1; }
dir=$(cd "$(mktemp -d)" && GOFLAGS=-mod=mod GONOSUMDB=sigs.k8s.io go mod download -json "sigs.k8s.io/gateway-api@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$dir/config/crd/standard" ] || { echo "sigs.k8s.io/gateway-api@$version has no config/crd/standard" >&2; exit 1; }
mkdir -p "$out.tmp"
for channel in standard experimental; do
  mkdir -p "$out.tmp/$channel"
  # kustomization.yaml is not a Kubernetes object.
  find "$dir/config/crd/$channel" -name '*.yaml' ! -name kustomization.yaml -exec cp {} "$out.tmp/$channel/" \;
done
chmod -R u+w "$out.tmp"
rm -rf "$out" && mv "$out.tmp" "$out"
echo "$out"
