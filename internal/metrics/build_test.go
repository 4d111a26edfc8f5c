package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestBuildInfo: one series, the last one set, at 1; RegisterCore
// registers it.
func TestBuildInfo(t *testing.T) {
	SetBuildInfo("0.8.0", "0123456789ab", "go1.26.0")
	SetBuildInfo("0.9.0", "25e3e00a1b2c-modified", "go1.26.0")
	reg := prometheus.NewRegistry() // of its own: nothing is registered at init
	RegisterCore(reg, nil)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "postern_build_info" {
			continue
		}
		if len(mf.Metric) != 1 {
			t.Fatalf("%d series, want 1: %v", len(mf.Metric), mf.Metric)
		}
		m := mf.Metric[0]
		got := map[string]string{}
		for _, l := range m.Label {
			got[l.GetName()] = l.GetValue()
		}
		if got["version"] != "0.9.0" || got["revision"] != "25e3e00a1b2c-modified" || got["goversion"] != "go1.26.0" || m.GetGauge().GetValue() != 1 {
			t.Fatalf("postern_build_info %v = %v", got, m.GetGauge().GetValue())
		}
		return
	}
	t.Fatal("no postern_build_info")
}
