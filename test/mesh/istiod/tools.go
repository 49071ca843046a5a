//go:build tools

// Package tools pins the pilot-discovery command for `go build` (test-only istiod binary).
package tools

import _ "istio.io/istio/pilot/cmd/pilot-discovery"
