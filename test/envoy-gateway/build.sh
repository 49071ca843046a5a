#!/usr/bin/env bash
# Builds the test-only Envoy Gateway (the envoy-gateway binary, github.com/envoyproxy/gateway) from
# its Go module through the Go module proxy, into .cache/envoy-gateway/<version>/ (git-ignored),
# once per pinned version. Prints the folder to use as ENVOY_GATEWAY_ASSETS. Its go.mod has no
# replace directives, so `go install` builds it as released. About 6 minutes on 2 cores, 2.4 GB
# of memory at its peak; the tests run it with our Envoy as its proxy (nothing else is fetched).
set -euo pipefail
version=v1.9.1
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="$root/.cache/envoy-gateway/$version"
if [ -x "$out/envoy-gateway" ]; then echo "$out"; exit 0; fi
command -v go >/dev/null || { echo "Go is needed to build Envoy Gateway (or set ENVOY_GATEWAY_ASSETS)" >&2; exit 1; }
mkdir -p "$out.tmp"
start=$SECONDS
echo "building envoy-gateway $version ..." >&2
CGO_ENABLED=0 GOFLAGS=-mod=mod GOBIN="$out.tmp" nice -n 10 go install -trimpath -ldflags "-s -w" \
  "github.com/envoyproxy/gateway/cmd/envoy-gateway@$version"
# Its own CRDs (EnvoyProxy, BackendTrafficPolicy, SecurityPolicy, …), from the same module.
dir=$(cd "$(mktemp -d)" && GOFLAGS=-mod=mod go mod download -json "github.com/envoyproxy/gateway@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
mkdir -p "$out.tmp/crds"
cp "$dir"/charts/gateway-helm/charts/crds/crds/generated/*.yaml "$out.tmp/crds/"
chmod -R u+w "$out.tmp"
rm -rf "$out" && mv "$out.tmp" "$out"
echo "built envoy-gateway in $((SECONDS - start)) s" >&2
echo "$out"
