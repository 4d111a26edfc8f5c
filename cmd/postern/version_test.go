package main

import (
	"strings"
	"testing"

	"postern"
)

// TestWriteVersion: postern version prints the release, the revision
// with its time and the modified flag, or the module version, and Go.
func TestWriteVersion(t *testing.T) {
	var b strings.Builder
	writeVersion(&b, postern.Build{Version: "0.9.0", Revision: "25e3e00a1b2c3d4e5f60718293a4b5c6d7e8f901", Time: "2026-05-01T10:00:00Z", Modified: true, GoVersion: "go1.26.0"})
	if got := b.String(); !strings.HasPrefix(got, "postern 0.9.0\nrevision 25e3e00a1b2c3d4e5f60718293a4b5c6d7e8f901 (2026-05-01T10:00:00Z), modified\ngo1.26.0 ") {
		t.Errorf("write:\n%s", got)
	}
	// go install postern@v0.9.0: a module version, no checkout.
	b.Reset()
	writeVersion(&b, postern.Build{Version: "0.9.0", Module: "v0.9.0", GoVersion: "go1.26.0"})
	if !strings.HasPrefix(b.String(), "postern 0.9.0\nmodule v0.9.0\ngo1.26.0 ") {
		t.Errorf("%s", b.String())
	}
}
