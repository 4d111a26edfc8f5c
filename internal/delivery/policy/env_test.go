package policy

import (
	"context"
	"encoding/hex"
	"errors"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"postern/internal/dns/dnstest"
	"postern/internal/testkit"
)

// env is one test's world: a DNS server, an MTA-STS HTTPS server, a clock
// and an Engine wired to them.
type env struct {
	dns   *dnstest.Server
	sts   *stsServer
	clock *testkit.Clock
	logs  *testkit.SyncBuffer
	opts  Options
	eng   *Engine
}

// newEnv starts the servers with zone; mod may change the Options before
// the Engine is made.
func newEnv(t *testing.T, zone dnstest.Zone, mod func(*Options)) *env {
	t.Helper()
	e := &env{
		dns:   dnstest.New(t, zone),
		sts:   newSTSServer(t),
		clock: testkit.NewClock(time.Now()),
		logs:  &testkit.SyncBuffer{},
	}
	e.opts = Options{
		Resolver:   e.dns.Resolver(),
		HTTPClient: e.sts.client(),
		Roots:      e.sts.ca.pool,
		Now:        e.clock.Now,
		Rand:       lockedRand(1),
		Logger:     slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics:    NewMetrics(nil), // the Engine's own: tests count apart
	}
	if mod != nil {
		mod(&e.opts)
	}
	e.eng = New(e.opts)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("engine log:\n%s", e.logs.String())
		}
	})
	return e
}

// lockedRand returns a seeded, concurrency-safe Options.Rand.
func lockedRand(seed uint64) func(int) int {
	var mu sync.Mutex
	r := rand.New(rand.NewPCG(seed, seed))
	return func(n int) int {
		mu.Lock()
		defer mu.Unlock()
		return r.IntN(n)
	}
}

func (e *env) plan(t *testing.T, domain string, requireTLS bool) (*Plan, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return e.eng.Plan(ctx, Request{Domain: domain, RequireTLS: requireTLS})
}

func (e *env) mustPlan(t *testing.T, domain string, requireTLS bool) *Plan {
	t.Helper()
	p, err := e.plan(t, domain, requireTLS)
	if err != nil {
		t.Fatalf("Plan(%s): %v", domain, err)
	}
	return p
}

// hostNames returns the names of p's hosts in order.
func hostNames(p *Plan) string {
	var n []string
	for _, h := range p.Hosts {
		n = append(n, h.Name)
	}
	return strings.Join(n, " ")
}

// checkHost checks a host's mode and source and that its reason is one
// non-empty line.
func checkHost(t *testing.T, h Host, mode Mode, src Source) {
	t.Helper()
	if h.Mode != mode || h.Source != src {
		t.Errorf("%s: mode %v source %q, want %v %q (reason %q)", h.Name, h.Mode, h.Source, mode, src, h.Reason)
	}
	if h.Reason == "" || strings.ContainsAny(h.Reason, "\r\n") {
		t.Errorf("%s: reason %q is not one line", h.Name, h.Reason)
	}
}

// wantErr checks that err wraps every target and is permanent or not.
func wantErr(t *testing.T, err error, permanent bool, targets ...error) {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	for _, target := range targets {
		if !errors.Is(err, target) {
			t.Errorf("error %q does not wrap %q", err, target)
		}
	}
	if IsPermanent(err) != permanent {
		t.Errorf("IsPermanent(%q) = %v, want %v", err, IsPermanent(err), permanent)
	}
	if !strings.HasPrefix(err.Error(), "policy: ") || strings.ContainsAny(err.Error(), "\r\n") {
		t.Errorf("error %q: want one line starting with policy:", err)
	}
}

// enforcePolicy is an MTA-STS policy body in enforce mode.
func stsBody(mode string, maxAge string, mx ...string) string {
	var b strings.Builder
	b.WriteString("version: STSv1\r\nmode: " + mode + "\r\n")
	for _, m := range mx {
		b.WriteString("mx: " + m + "\r\n")
	}
	b.WriteString("max_age: " + maxAge + "\r\n")
	return b.String()
}

func hexOf(b []byte) string { return hex.EncodeToString(b) }
