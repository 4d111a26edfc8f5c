package metrics

// BuildInfo is 1, labelled with the running binary's version (the
// release, from VERSION), revision (the VCS revision it was built from,
// as "25e3e00a1b2c" or "25e3e00a1b2c-modified", or "unknown") and Go
// version. internal/server sets it once at start (SetBuildInfo); RegisterCore
// registers it.
var BuildInfo = GaugeVec("postern_build_info", "The running binary: 1, labelled with its version, VCS revision and Go version.", "version", "revision", "goversion")

// SetBuildInfo sets BuildInfo for the running binary; it keeps only one
// series.
func SetBuildInfo(version, revision, goversion string) {
	BuildInfo.Reset()
	BuildInfo.WithLabelValues(version, revision, goversion).Set(1)
}
