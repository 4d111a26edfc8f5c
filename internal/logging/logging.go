// Package logging holds the log/slog handler parts of Postern's logs:
// durations written as seconds, and a logger's attributes formatted
// only when a record is written.
package logging

import (
	"context"
	"io"
	"log/slog"
	"math"
	"sync"
)

// DurationSeconds is the log handlers' ReplaceAttr: every duration is
// written as seconds, a decimal number rounded to the microsecond
// ("duration":0.133 in JSON, duration=0.133 in text), in both formats
// and for every key (duration, delay, delay_*, window, deadline...).
// slog's JSON handler would write integer nanoseconds, its text
// handler Go's "133ms": one form keeps a log collector's parsing and
// arithmetic simple, and seconds are what Postfix's delay= uses.
func DurationSeconds(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		s := a.Value.Duration().Seconds()
		a.Value = slog.Float64Value(math.Round(s*1e6) / 1e6)
	}
	return a
}

// LazyAttrs returns h with a logger's attributes made lazy: WithAttrs
// and WithGroup reach h only when a record does, and then once.
// slog's text and JSON handlers format attributes in WithAttrs; each
// session's logger carries its listener and session id from the start,
// and formatting them ahead for every session cost about 1 % of the
// server's CPU under load when the level is warn and most sessions
// never log a line (docs/performance.md). h's Enabled must not depend
// on its attributes (true of slog's handlers).
func LazyAttrs(h slog.Handler) slog.Handler {
	return &lazyHandler{root: h, node: &lazyNode{h: h}}
}

// lazyHandler is the slog.Handler of LazyAttrs.
type lazyHandler struct {
	root slog.Handler // h without attributes: asked Enabled
	node *lazyNode
}

// lazyNode is a handler derived from parent by WithAttrs (attrs) or
// WithGroup (group), made on first use.
type lazyNode struct {
	once   sync.Once
	parent *lazyNode
	attrs  []slog.Attr
	group  string
	h      slog.Handler
}

func (n *lazyNode) get() slog.Handler {
	if n.parent == nil {
		return n.h
	}
	n.once.Do(func() {
		p := n.parent.get()
		if n.group != "" {
			n.h = p.WithGroup(n.group)
		} else {
			n.h = p.WithAttrs(n.attrs)
		}
	})
	return n.h
}

func (l *lazyHandler) Enabled(ctx context.Context, lv slog.Level) bool {
	return l.root.Enabled(ctx, lv)
}

func (l *lazyHandler) Handle(ctx context.Context, r slog.Record) error {
	return l.node.get().Handle(ctx, r)
}

func (l *lazyHandler) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return l
	}
	return &lazyHandler{root: l.root, node: &lazyNode{parent: l.node, attrs: as}}
}

func (l *lazyHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return l
	}
	return &lazyHandler{root: l.root, node: &lazyNode{parent: l.node, group: name}}
}

// New returns Postern's logger writing to w at level (a *slog.LevelVar
// when it may change while the logger is in use): JSON lines when json
// is true, else slog's text form; durations in seconds, attributes
// formatted only when a record is written.
func New(json bool, level slog.Leveler, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: DurationSeconds}
	if json {
		return slog.New(LazyAttrs(slog.NewJSONHandler(w, opts)))
	}
	return slog.New(LazyAttrs(slog.NewTextHandler(w, opts)))
}
