package admin

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
)

// countingHandler counts the WithAttrs and WithGroup calls made on it and
// on the handlers derived from it.
type countingHandler struct {
	slog.Handler
	withs *atomic.Int32
}

func (c countingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c.withs.Add(1)
	return countingHandler{c.Handler.WithAttrs(as), c.withs}
}

func (c countingHandler) WithGroup(name string) slog.Handler {
	c.withs.Add(1)
	return countingHandler{c.Handler.WithGroup(name), c.withs}
}

// TestTapDefersAttrs checks that a logger's attributes reach the next
// handler only when a record does, and then in full: those of the
// logger and its groups, formatted once.
func TestTapDefersAttrs(t *testing.T) {
	var out bytes.Buffer
	var withs atomic.Int32
	next := countingHandler{slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelWarn}), &withs}
	ev := NewEvents(10)
	log := slog.New(ev.Handler(next)).With("session", "s1", "remote", "192.0.2.1").WithGroup("g").With("k", "v")
	log.Info(msgDelivered, "id", "m1", "rcpt", "a@example.test", "local", true)
	log.Info("session: accepted", "bytes", 10)
	if n := withs.Load(); n != 0 || out.Len() != 0 {
		t.Fatalf("Info records below the level: %d With calls on next, output %q; want none", n, out.String())
	}
	if d := ev.Deliveries(); len(d) != 1 || d[0].ID != "m1" || d[0].Rcpt != "a@example.test" || !d[0].Local {
		t.Fatalf("deliveries = %+v, want m1 to a@example.test, local", d)
	}
	log.Warn("smtpd: odd", "n", 1)
	log.Warn("smtpd: odd again", "n", 2)
	got := out.String()
	for _, want := range []string{
		`msg="smtpd: odd" session=s1 remote=192.0.2.1 g.k=v g.n=1`,
		`msg="smtpd: odd again" session=s1 remote=192.0.2.1 g.k=v g.n=2`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if n := withs.Load(); n != 3 {
		t.Errorf("%d With calls on next for two warnings, want 3 (made once)", n)
	}
	// A sibling logger of the same parent shares the parent's handler.
	log2 := slog.New(ev.Handler(next)).With("session", "s2")
	log2.Error("smtpd: bad")
	if !strings.Contains(out.String(), `msg="smtpd: bad" session=s2`) {
		t.Errorf("output lacks the second logger's line:\n%s", out.String())
	}
	if !log.Handler().Enabled(context.Background(), slog.LevelInfo) {
		t.Error("the tap must let Info records in, for the deliveries")
	}
	if log.Handler().Enabled(context.Background(), slog.LevelDebug) {
		t.Error("Debug records are enabled, but next logs warnings only")
	}
}
