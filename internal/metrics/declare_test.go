package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestRegisterAndZero: Register with a nil registry registers nowhere
// (the same metrics then register on a registry without a clash), and
// Zero makes a series at 0 for each value, which gathering shows.
func TestRegisterAndZero(t *testing.T) {
	t.Parallel()
	c := CounterVec("postern_test_total", "A test counter, by result.", "result")
	h := Histogram("postern_test_seconds", "A test histogram.", []float64{1, 2})
	Register(nil, c, h)
	Zero(c, "ok", "error")
	reg := prometheus.NewRegistry()
	Register(reg, c, h)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, mf := range mfs {
		got[mf.GetName()] = len(mf.GetMetric())
		if mf.GetName() == "postern_test_total" {
			for _, m := range mf.GetMetric() {
				if v := m.GetCounter().GetValue(); v != 0 {
					t.Errorf("%v = %v, want 0", m.GetLabel(), v)
				}
			}
		}
		if mf.GetName() == "postern_test_seconds" {
			if b := mf.GetMetric()[0].GetHistogram().GetBucket(); len(b) != 2 || b[1].GetUpperBound() != 2 {
				t.Errorf("buckets %v, want 1 and 2", b)
			}
		}
	}
	if got["postern_test_total"] != 2 || got["postern_test_seconds"] != 1 {
		t.Errorf("series by family %v, want 2 counters at 0 and 1 histogram", got)
	}
}
