#!/usr/bin/env bash
# Builds the test-only envtest binaries (kube-apiserver, etcd) from their Go modules through the Go
# module proxy, into .cache/envtest/<versions>/ (git-ignored), once per pinned version. Prints the
# folder to use as KUBEBUILDER_ASSETS. Go is used for nothing else in this project.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
k8s=$(sed -n 's/^require k8s.io\/kubernetes v//p' "$here/kube-apiserver/go.mod")
etcd=$(sed -n 's/^require go.etcd.io\/etcd\/server\/v3 v//p' "$here/etcd/go.mod")
out="$root/.cache/envtest/k8s-$k8s-etcd-$etcd"
if [ -x "$out/kube-apiserver" ] && [ -x "$out/etcd" ]; then echo "$out"; exit 0; fi
command -v go >/dev/null || { echo "Go is needed to build the envtest binaries (or set KUBEBUILDER_ASSETS)" >&2; exit 1; }
mkdir -p "$out"
export CGO_ENABLED=0 GOFLAGS=-mod=mod
# go.sum pins every module's hash; the checksum database is not needed to check them.
export GONOSUMDB="${GONOSUMDB:-k8s.io,go.etcd.io}"
build() { # dir package output
  echo "building $3 ($2) ..." >&2
  local start=$SECONDS
  (cd "$here/$1" && go build -trimpath -ldflags "-s -w" -o "$out/$3.tmp" "$2")
  mv "$out/$3.tmp" "$out/$3"
  echo "built $3 in $((SECONDS - start)) s" >&2
}
[ -x "$out/etcd" ] || build etcd go.etcd.io/etcd/server/v3 etcd
[ -x "$out/kube-apiserver" ] || build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver kube-apiserver
echo "$out"
