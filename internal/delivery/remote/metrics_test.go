package remote

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"postern/internal/delivery/policy"
	"postern/internal/testkit"
)

// value reads a counter or histogram count.
func value(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return float64(d.Histogram.GetSampleCount())
}

// TestMetrics counts into a registry of its own (so it may run in
// parallel with other tests) and checks the counts and the names.
func TestMetrics(t *testing.T) {
	t.Parallel()
	s := newFake(t, "127.0.0.2", nil)
	f := newFixture(t, []policy.Host{mx("mx.example.test", policy.Opportunistic, s)}, s)
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	f.d.Metrics = m
	del := m.deliveries.WithLabelValues("delivered", "plain")
	bounced := m.deliveries.WithLabelValues("bounced", "plain")
	hit, miss := m.pool.WithLabelValues("hit"), m.pool.WithLabelValues("miss")
	d0, b0, h0, m0, s0 := value(t, del), value(t, bounced), value(t, hit), value(t, miss), value(t, m.seconds)
	delivered(t, f.one(t, testMsg("a@example.test", "b@example.test")))
	msg := testMsg("c@example.test")
	msg.EightBit = true // the fake server has no 8BITMIME: bounced
	f.one(t, msg)
	if d, b, h, m, n := value(t, del)-d0, value(t, bounced)-b0, value(t, hit)-h0, value(t, miss)-m0, value(t, m.seconds)-s0; d != 2 || b != 1 || h != 1 || m != 1 || n != 2 {
		t.Errorf("delivered %v bounced %v hit %v miss %v observed %v, want 2 1 1 1 2", d, b, h, m, n)
	}
	fams := testkit.Families(t, reg)
	for _, n := range []string{"postern_remote_deliveries_total", "postern_remote_pool_total", "postern_remote_delivery_seconds"} {
		if fams[n] == nil {
			t.Errorf("%s not registered", n)
		}
	}
}
