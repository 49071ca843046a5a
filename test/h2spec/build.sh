#!/usr/bin/env bash
# Builds h2spec, the HTTP/2 conformance suite, from its Go module through the Go module proxy into
# .cache/h2spec/<version>/ (git-ignored), once per pinned version. Prints the folder to use as
# H2SPEC_ASSETS. Used by test/gateway-h2spec.test.ts only.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
version=$(sed -n 's/^require github.com\/summerwind\/h2spec v//p' "$here/go.mod")
out="$root/.cache/h2spec/$version"
if [ -x "$out/h2spec" ]; then echo "$out"; exit 0; fi
command -v go >/dev/null || { echo "Go is needed to build h2spec (or set H2SPEC_ASSETS)" >&2; exit 1; }
mkdir -p "$out"
export CGO_ENABLED=0 GOFLAGS=-mod=mod
start=$SECONDS
(cd "$here" && go build -trimpath -ldflags "-s -w" -o "$out/h2spec.tmp" github.com/summerwind/h2spec/cmd/h2spec)
mv "$out/h2spec.tmp" "$out/h2spec"
echo "built h2spec $version in $((SECONDS - start)) s" >&2
echo "$out"
