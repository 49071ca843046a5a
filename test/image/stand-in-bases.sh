#!/usr/bin/env bash
# Makes the two local stand-ins for the Containerfile's base images (no registry is reachable
# where the tests run), from the official Node binary of .ci/node.sh and the host's shared
# libraries, and imports them into podman's storage (as configured by the caller's
# CONTAINERS_STORAGE_CONF). Prints the two image names, build then runtime:
#   localhost/switchyard-stand-in/node-build:<node>    node + npm on PATH, /bin/sh, CA certificates
#                                                      (for node:<version>-slim)
#   localhost/switchyard-stand-in/node-runtime:<node>  /nodejs/bin/node, user 65532, no shell
#                                                      (for distroless nodejs, :nonroot)
# Test-only: the product's image is built from the Containerfile, on whatever bases it is given.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
node_bin="$(bash "$root/.ci/node.sh")/node"
node_version="$("$node_bin" -p 'process.versions.node')"
build=localhost/switchyard-stand-in/node-build:$node_version
runtime=localhost/switchyard-stand-in/node-runtime:$node_version
if podman image exists "$build" && podman image exists "$runtime"; then echo "$build $runtime"; exit 0; fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Copies a file and every shared library it loads (as ldd resolves them) into a root filesystem.
with_libraries() {
  local fs=$1 file=$2
  for lib in $(ldd "$file" | grep -o '/[^ ]*'); do
    mkdir -p "$fs$(dirname "$lib")"
    cp -L "$lib" "$fs$lib"
  done
}
base_files() {
  local fs=$1
  mkdir -p "$fs/etc/ssl/certs" "$fs/tmp" "$fs/root" "$fs/home/nonroot"
  chmod 1777 "$fs/tmp"
  cp -L /etc/ssl/certs/ca-certificates.crt "$fs/etc/ssl/certs/ca-certificates.crt"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$fs/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$fs/etc/group"
  chown 65532:65532 "$fs/home/nonroot"
}

# Runtime: node only, where distroless puts it.
fs="$work/runtime"
base_files "$fs"
mkdir -p "$fs/nodejs/bin"
cp "$node_bin" "$fs/nodejs/bin/node"
with_libraries "$fs" "$node_bin"
tar -C "$fs" -cf "$work/runtime.tar" .
podman import --quiet \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/nodejs/bin' \
  --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
  --change 'USER 65532' --change 'WORKDIR /home/nonroot' \
  --change 'ENTRYPOINT ["/nodejs/bin/node"]' \
  "$work/runtime.tar" "$runtime" >/dev/null

# Build: node and npm on PATH, a shell for RUN, the host's CA bundle (npm checks the registry's).
fs="$work/build"
base_files "$fs"
mkdir -p "$fs/usr/local/bin" "$fs/usr/local/lib/node_modules" "$fs/bin" "$fs/usr/bin"
cp "$node_bin" "$fs/usr/local/bin/node"
with_libraries "$fs" "$node_bin"
npm_dir="$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")"
cp -r "$npm_dir" "$fs/usr/local/lib/node_modules/npm"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$fs/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$fs/usr/local/bin/npx"
for tool in /bin/sh /usr/bin/env; do
  cp -L "$tool" "$fs$tool"
  with_libraries "$fs" "$(readlink -f "$tool")"
done
tar -C "$fs" -cf "$work/build.tar" .
podman import --quiet \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' \
  --change 'ENV npm_config_cafile=/etc/ssl/certs/ca-certificates.crt' \
  --change 'ENV HOME=/root' \
  "$work/build.tar" "$build" >/dev/null
echo "$build $runtime"
