package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestLogDurations checks that a duration is written as seconds, a
// number, in JSON and in text, inside groups too.
func TestLogDurations(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	opts := &slog.HandlerOptions{ReplaceAttr: DurationSeconds}
	log := slog.New(LazyAttrs(slog.NewJSONHandler(&buf, opts)))
	log.Info("session end", "duration", 133*time.Millisecond, "window", 10*time.Minute,
		slog.Group("g", slog.Duration("delay", 1500*time.Microsecond)), "n", 3)
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("%v: %s", err, buf.String())
	}
	if rec["duration"] != 0.133 || rec["window"] != 600.0 || rec["n"] != 3.0 {
		t.Errorf("JSON durations: %s", buf.String())
	}
	if g, _ := rec["g"].(map[string]any); g["delay"] != 0.0015 {
		t.Errorf("JSON duration in a group: %s", buf.String())
	}
	buf.Reset()
	log = slog.New(LazyAttrs(slog.NewTextHandler(&buf, opts)))
	log.Info("session end", "duration", 133*time.Millisecond, "deadline", 5*time.Second)
	if !strings.Contains(buf.String(), "duration=0.133 deadline=5") {
		t.Errorf("text durations: %s", buf.String())
	}
}

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

// TestLazyAttrs checks that a logger's attributes reach the handler
// only when a record does, and then in full: those of the logger and its
// groups, formatted once.
func TestLazyAttrs(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	var withs atomic.Int32
	next := countingHandler{slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelWarn}), &withs}
	log := slog.New(LazyAttrs(next)).With("session", "s1", "remote", "192.0.2.1").WithGroup("g").With("k", "v")
	log.Info("session start", "tls", true)
	if n := withs.Load(); n != 0 || out.Len() != 0 {
		t.Fatalf("an Info record below the level: %d With calls, output %q; want none", n, out.String())
	}
	log.Warn("smtpd: odd", "n", 1)
	log.Warn("smtpd: odd again", "n", 2)
	for _, want := range []string{
		`msg="smtpd: odd" session=s1 remote=192.0.2.1 g.k=v g.n=1`,
		`msg="smtpd: odd again" session=s1 remote=192.0.2.1 g.k=v g.n=2`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if n := withs.Load(); n != 3 {
		t.Errorf("%d With calls for two warnings, want 3 (made once)", n)
	}
	slog.New(LazyAttrs(next)).With("session", "s2").Error("smtpd: bad")
	if !strings.Contains(out.String(), `msg="smtpd: bad" session=s2`) {
		t.Errorf("output lacks the second logger's line:\n%s", out.String())
	}
	if log.Handler().Enabled(context.Background(), slog.LevelInfo) {
		t.Error("Info enabled, but the handler logs warnings only")
	}
}

// TestNew: the two formats, a duration in seconds, and the level held
// by a LevelVar that changes while the logger is in use.
func TestNew(t *testing.T) {
	var level slog.LevelVar
	level.Set(slog.LevelInfo)
	var js, txt bytes.Buffer
	jl, tl := New(true, &level, &js), New(false, &level, &txt)
	for _, l := range []*slog.Logger{jl, tl} {
		l.Debug("hidden")
		l.Info("sent", "duration", 1500*time.Millisecond)
	}
	if got := js.String(); !strings.Contains(got, `"msg":"sent","duration":1.5}`) || strings.Contains(got, "hidden") {
		t.Errorf("JSON: %s", got)
	}
	if got := txt.String(); !strings.Contains(got, "msg=sent duration=1.5\n") || strings.Contains(got, "hidden") {
		t.Errorf("text: %s", got)
	}
	level.Set(slog.LevelDebug)
	jl.Debug("shown")
	if !strings.Contains(js.String(), `"msg":"shown"`) {
		t.Errorf("the level's change not applied: %s", js.String())
	}
}
