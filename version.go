// Package postern holds Postern's release version, read from the file
// VERSION beside it: the one place the version is written. The binary
// (cmd/postern), the Debian package (scripts/package) and the container
// image (contrib/Dockerfile) all take it from there; the binary adds the
// VCS revision it was built from (runtime/debug.ReadBuildInfo).
package postern

import (
	_ "embed"
	"strings"
)

//go:embed VERSION
var version string

// Version returns the release version, as in VERSION: "0.9.0".
func Version() string { return strings.TrimSpace(version) }
