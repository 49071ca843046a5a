#!/usr/bin/env bash
# Builds the test-only helm binary from its Go module (helm.sh/helm/v3, pinned here) into
# .cache/helm/<version>/ (git-ignored), once per version, and prints that folder (HELM_ASSETS).
# Helm is not part of the product: the tests lint and render the chart with it.
set -euo pipefail
version=v3.22.0
# The Kubernetes version helm renders for by default (an official release build sets it from its
# client-go, k8s.io/client-go v0.37 for v3.22.0); without it helm assumes v1.20.
k8s_major=1
k8s_minor=37
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="$root/.cache/helm/$version-k8s-$k8s_major.$k8s_minor"
if [ -x "$out/helm" ]; then echo "$out"; exit 0; fi
mkdir -p "$out"
exec 9>"$out.lock"
flock 9
if [ -x "$out/helm" ]; then echo "$out"; exit 0; fi
command -v go >/dev/null || { echo "Go is needed to build helm for the chart tests (or set HELM_ASSETS)" >&2; exit 1; }
echo "building helm $version ..." >&2
start=$SECONDS
GOBIN="$out/.bin" CGO_ENABLED=0 GOFLAGS=-mod=mod go install -trimpath \
  -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$version \
    -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=$k8s_major -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$k8s_minor \
    -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=$k8s_major -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$k8s_minor" \
  "helm.sh/helm/v3/cmd/helm@$version"
mv "$out/.bin/helm" "$out/helm" && rmdir "$out/.bin"
echo "built helm in $((SECONDS - start)) s" >&2
echo "$out"
