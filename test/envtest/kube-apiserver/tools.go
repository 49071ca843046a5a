//go:build tools

// Package tools pins the kube-apiserver command for `go build` (test-only envtest binaries).
package tools
