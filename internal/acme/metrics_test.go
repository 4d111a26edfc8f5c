package acme

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"postern/internal/acme/acmetest"
	"postern/internal/testkit"
)

// TestMetrics: failed attempts count and show in a row; the expiry
// timestamp is absent until there is a certificate, then is its
// NotAfter, labelled with the name.
func TestMetrics(t *testing.T) {
	t.Parallel()
	p := acmetest.Start(t, acmetest.Options{AlwaysValid: true})
	reg := prometheus.NewRegistry()
	met := NewMetrics(reg)
	clock := newFakeClock(time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC))
	m, _, _ := newManager(t, p, Options{Hostnames: []string{"blocked-domain.example"}, Now: clock.Now,
		After: clock.After, RetryFirst: time.Minute, Metrics: met})
	ctx, cancel := context.WithCancel(testContext(t))
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	<-clock.waits
	clock.fire <- clock.Now()
	<-clock.waits
	cancel()
	<-done
	fams := testkit.Families(t, reg)
	if _, ok := fams["postern_acme_certificate_expiry_timestamp_seconds"]; ok {
		t.Errorf("an expiry without a certificate")
	}
	if g := fams["postern_acme_consecutive_failures"].GetMetric()[0].GetGauge().GetValue(); g != 2 {
		t.Errorf("consecutive failures %v, want 2", g)
	}
	for _, c := range fams["postern_acme_attempts_total"].GetMetric() {
		want := map[string]float64{"failure": 2, "success": 0}[c.GetLabel()[0].GetValue()]
		if c.GetCounter().GetValue() != want {
			t.Errorf("attempts %v: %v", c.GetLabel(), c.GetCounter().GetValue())
		}
	}

	dir := filepath.Join(t.TempDir(), "acme")
	m, _, _ = newManager(t, p, Options{Dir: dir, Metrics: met})
	if _, err := m.Obtain(testContext(t)); err != nil {
		t.Fatal(err)
	}
	m, _, _ = newManager(t, p, Options{Dir: dir, Metrics: met})
	c, err := m.Load()
	if err != nil {
		t.Fatal(err)
	}
	e := testkit.Families(t, reg)["postern_acme_certificate_expiry_timestamp_seconds"].GetMetric()
	if len(e) != 1 || e[0].GetLabel()[0].GetValue() != testHost || e[0].GetGauge().GetValue() != float64(c.Leaf.NotAfter.Unix()) {
		t.Errorf("expiry %v, want %s at %d", e, testHost, c.Leaf.NotAfter.Unix())
	}
}
