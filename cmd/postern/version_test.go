package main

import (
	"runtime/debug"
	"strings"
	"testing"
)

// TestVersionOf: the release version with what the build recorded: the
// VCS revision, its time and the modified flag, or the module version.
func TestVersionOf(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: "postern", Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs", Value: "git"},
		{Key: "vcs.revision", Value: "25e3e00a1b2c3d4e5f60718293a4b5c6d7e8f901"},
		{Key: "vcs.time", Value: "2026-05-01T10:00:00Z"},
		{Key: "vcs.modified", Value: "true"},
	}}
	v := versionOf("0.9.0", bi)
	if v.Version != "0.9.0" || v.Module != "" || v.ShortRevision() != "25e3e00a1b2c-modified" || v.String() != "0.9.0 (25e3e00a1b2c-modified)" || v.GoVersion != "go1.26.0" {
		t.Errorf("%+v, %s", v, v)
	}
	var b strings.Builder
	v.write(&b)
	if got := b.String(); !strings.HasPrefix(got, "postern 0.9.0\nrevision 25e3e00a1b2c3d4e5f60718293a4b5c6d7e8f901 (2026-05-01T10:00:00Z), modified\ngo1.26.0 ") {
		t.Errorf("write:\n%s", got)
	}

	// go install postern@v0.9.0: a module version, no checkout.
	v = versionOf("0.9.0", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v0.9.0"}})
	b.Reset()
	v.write(&b)
	if v.ShortRevision() != "unknown" || v.String() != "0.9.0" || !strings.HasPrefix(b.String(), "postern 0.9.0\nmodule v0.9.0\ngo1.26.0 ") {
		t.Errorf("%+v\n%s", v, b.String())
	}
	// No build information at all.
	if v := versionOf("0.9.0", nil); v.String() != "0.9.0" || v.GoVersion == "" {
		t.Errorf("%+v", v)
	}
}
