#!/usr/bin/env bash
# Builds what the cluster tests (npm run test:cluster) run that is slow to build, once per pinned
# version, into the git-ignored .cache/cluster/<version>/: kubelet, kube-controller-manager and
# kube-scheduler from the k8s.io/kubernetes Go module (kube-apiserver and etcd are envtest's, the
# same version), and the pod sandbox's `pause` (a static C program). containerd, runc and the CNI
# plugins come from Debian (.ci/run installs them). Prints the folder.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
k8s=$(sed -n 's/^require k8s.io\/kubernetes v//p' "$here/kubernetes/go.mod")
out="$root/.cache/cluster/k8s-$k8s"
bins=(kube-apiserver kubelet kube-controller-manager kube-scheduler)
done_already() { for b in "${bins[@]}" pause; do [ -x "$out/$b" ] || return 1; done; }
if done_already; then echo "$out"; exit 0; fi
command -v go >/dev/null || { echo "Go is needed to build the cluster's binaries" >&2; exit 1; }
mkdir -p "$out"
export CGO_ENABLED=0 GOFLAGS=-mod=mod
# go.sum pins every module's hash; the checksum database is not needed to check them.
export GONOSUMDB="${GONOSUMDB:-k8s.io}"
major=${k8s%%.*}; rest=${k8s#*.}; minor=${rest%%.*}
pkg=k8s.io/component-base/version
ldflags="-s -w -X $pkg.gitVersion=v$k8s -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
for b in "${bins[@]}"; do
  [ -x "$out/$b" ] && continue
  echo "building $b ..." >&2
  start=$SECONDS
  (cd "$here/kubernetes" && go build -trimpath -ldflags "$ldflags" -o "$out/$b.tmp" "k8s.io/kubernetes/cmd/$b")
  mv "$out/$b.tmp" "$out/$b"
  echo "built $b in $((SECONDS - start)) s" >&2
done
if [ ! -x "$out/pause" ]; then
  gcc -static -Os -s -o "$out/pause.tmp" "$here/pause.c"
  mv "$out/pause.tmp" "$out/pause"
fi
echo "$out"
