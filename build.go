package postern

import (
	"runtime"
	"runtime/debug"
)

// Build is what this binary is: the release version (the file
// VERSION) and what the Go toolchain recorded of the build
// (runtime/debug.ReadBuildInfo). `postern version`, the "postern ready"
// log line, the status page and the postern_build_info metric show it.
type Build struct {
	// Version is the release version, from VERSION: "0.9.0".
	Version string
	// Module is the main module's version when the build recorded one
	// (not "(devel)"): set by go install MODULE@VERSION.
	Module string
	// Revision is the VCS revision of the checkout it was built from,
	// Time its commit time (RFC 3339), Modified whether the checkout had
	// changes not committed. Revision is "" for a build outside a
	// checkout, or with -buildvcs=false.
	Revision string
	Time     string
	Modified bool
	// GoVersion is the Go release that built it: "go1.26.0".
	GoVersion string
}

// ReadBuild returns this binary's version.
func ReadBuild() Build {
	bi, _ := debug.ReadBuildInfo()
	return BuildOf(Version(), bi)
}

// BuildOf combines the release version with the build information bi
// (nil when the binary has none).
func BuildOf(release string, bi *debug.BuildInfo) Build {
	v := Build{Version: release, GoVersion: runtime.Version()}
	if bi == nil {
		return v
	}
	v.GoVersion = bi.GoVersion
	if m := bi.Main.Version; m != "" && m != "(devel)" {
		v.Module = m
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

// ShortRevision is the revision as logs and metrics show it: its first
// 12 hexadecimal digits, and "-modified" for a checkout with changes not
// committed; "unknown" without a revision.
func (v Build) ShortRevision() string {
	if v.Revision == "" {
		return "unknown"
	}
	r := v.Revision
	if len(r) > 12 {
		r = r[:12]
	}
	if v.Modified {
		r += "-modified"
	}
	return r
}

// String is the version in one line: "0.9.0 (25e3e00a1b2c)".
func (v Build) String() string {
	if v.Revision == "" {
		return v.Version
	}
	return v.Version + " (" + v.ShortRevision() + ")"
}
