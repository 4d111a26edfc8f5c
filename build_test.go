package postern

import (
	"runtime/debug"
	"testing"
)

// TestBuildOf: the release version with what the build recorded: the
// VCS revision, its time and the modified flag, or the module version.
func TestBuildOf(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: "postern", Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs", Value: "git"},
		{Key: "vcs.revision", Value: "25e3e00a1b2c3d4e5f60718293a4b5c6d7e8f901"},
		{Key: "vcs.time", Value: "2026-05-01T10:00:00Z"},
		{Key: "vcs.modified", Value: "true"},
	}}
	v := BuildOf("0.9.0", bi)
	if v.Version != "0.9.0" || v.Module != "" || v.ShortRevision() != "25e3e00a1b2c-modified" || v.String() != "0.9.0 (25e3e00a1b2c-modified)" ||
		v.GoVersion != "go1.26.0" || v.Time != "2026-05-01T10:00:00Z" || !v.Modified {
		t.Errorf("%+v, %s", v, v)
	}
	// go install postern@v0.9.0: a module version, no checkout.
	v = BuildOf("0.9.0", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v0.9.0"}})
	if v.ShortRevision() != "unknown" || v.String() != "0.9.0" || v.Module != "v0.9.0" {
		t.Errorf("%+v", v)
	}
	// No build information at all.
	if v := BuildOf("0.9.0", nil); v.String() != "0.9.0" || v.GoVersion == "" {
		t.Errorf("%+v", v)
	}
	if v := ReadBuild(); v.Version != Version() {
		t.Errorf("ReadBuild: %+v", v)
	}
}
