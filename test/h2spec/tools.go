//go:build tools

// Package tools pins h2spec's module for test/h2spec/build.sh.
package tools

import _ "github.com/summerwind/h2spec/cmd/h2spec"
