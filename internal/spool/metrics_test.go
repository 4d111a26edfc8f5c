package spool

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"postern/internal/spool/spooltest"
)

// TestMetricsPerSpool: each Spool counts into the set it was given, so
// spools of tests running side by side count apart; a Spool opened
// again with the same set sets its gauges from what it recovers.
func TestMetricsPerSpool(t *testing.T) {
	t.Parallel()
	m, other := NewMetrics(nil), NewMetrics(nil)
	dir := t.TempDir()
	open := func(m *Metrics) *Spool {
		s, err := Open(Options{Dir: dir, Logger: quietLogger(), Metrics: m})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open(m)
	held := spooltest.Env(spooltest.ID(), "a@x")
	held.Hold = true
	mustPut(t, s, held, []byte("a"))
	mustPut(t, s, spooltest.Env(spooltest.ID(), "b@x"), []byte("b"))
	s2, err := Open(Options{Dir: t.TempDir(), Logger: quietLogger(), Metrics: other})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	check := func(when string, m *Metrics, messages, held float64) {
		t.Helper()
		if got := testutil.ToFloat64(m.Messages); got != messages {
			t.Errorf("%s: messages = %v, want %v", when, got, messages)
		}
		if got := testutil.ToFloat64(m.Held); got != held {
			t.Errorf("%s: held = %v, want %v", when, got, held)
		}
	}
	check("after two puts", m, 2, 1)
	check("the other spool", other, 0, 0)
	if n := samples(t, m.BatchMessages); n < 1 {
		t.Errorf("batch samples = %d, want at least 1", n)
	}
	if n := samples(t, other.BatchMessages) + samples(t, other.FsyncSeconds); n != 0 {
		t.Errorf("the other spool's histograms have %d samples, want 0", n)
	}
	s.Close()
	m.Messages.Set(0)
	m.Held.Set(0)
	s = open(m)
	defer s.Close()
	check("opened again", m, 2, 1)
}

// samples returns the sample count of the histogram h.
func samples(t *testing.T, h prometheus.Histogram) uint64 {
	t.Helper()
	var d dto.Metric
	if err := h.Write(&d); err != nil {
		t.Fatal(err)
	}
	return d.GetHistogram().GetSampleCount()
}
