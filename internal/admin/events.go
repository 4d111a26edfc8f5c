package admin

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Events keeps the recent delivery outcomes and auth anomalies for the
// status page, in two rings of bounded size. It learns them from the
// server's log: Handler wraps the server's slog.Handler and records the
// queue runner's "queue: delivered", "queue: delivery deferred" and
// "queue: delivery failed" events and the abuse engine's "auth ban" and
// "auth abuse alert" events, passing every record on unchanged. An
// Events is safe for concurrent use.
type Events struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	mu         sync.Mutex
	deliveries ring[Delivery]
	anomalies  ring[Anomaly]
}

// Event names Events records, as the queue and admission packages log them.
const (
	msgDelivered = "queue: delivered"
	msgDeferred  = "queue: delivery deferred"
	msgFailed    = "queue: delivery failed"
	msgAuthBan   = "auth ban"
	msgAuthAlert = "auth abuse alert"
)

// NewEvents returns an Events that keeps the last n deliveries and the
// last n auth anomalies.
func NewEvents(n int) *Events {
	if n < 1 {
		n = 1
	}
	return &Events{deliveries: ring[Delivery]{max: n}, anomalies: ring[Anomaly]{max: n}}
}

// Delivery is one delivery attempt's outcome for one recipient.
type Delivery struct {
	// Time is when it was recorded.
	Time time.Time `json:"time"`
	// ID is the queue id.
	ID string `json:"id"`
	// Rcpt is the recipient.
	Rcpt string `json:"rcpt"`
	// Outcome is "delivered", "deferred" or "failed".
	Outcome string `json:"outcome"`
	// Local is true for a local mailbox.
	Local bool `json:"local"`
	// RemoteMTA is the server talked to, if any.
	RemoteMTA string `json:"remote_mta,omitempty"`
	// Error is why it was not delivered.
	Error string `json:"error,omitempty"`
}

// Anomaly is one auth-abuse event: a ban the engine made, or an alert.
type Anomaly struct {
	// Time is when it was recorded.
	Time time.Time `json:"time"`
	// Event is "ban" or "alert".
	Event string `json:"event"`
	// Kind is the alert's kind (bruteforce, stuffing, distributed); ""
	// for a ban.
	Kind string `json:"kind,omitempty"`
	// Subject is the banned prefix, or what the alert is about (a
	// prefix, an address or a username).
	Subject string `json:"subject,omitempty"`
	// Strikes is the ban's strike count, 0 when not given.
	Strikes int `json:"strikes,omitempty"`
	// Reason says why.
	Reason string `json:"reason,omitempty"`
}

// Deliveries returns the recorded deliveries, newest first.
func (e *Events) Deliveries() []Delivery {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.deliveries.newestFirst()
}

// Anomalies returns the auth anomalies recorded since since, newest
// first.
func (e *Events) Anomalies(since time.Time) []Anomaly {
	e.mu.Lock()
	all := e.anomalies.newestFirst()
	e.mu.Unlock()
	out := all[:0]
	for _, a := range all {
		if !a.Time.Before(since) {
			out = append(out, a)
		}
	}
	return out
}

func (e *Events) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// Handler returns a slog.Handler that records the events Events keeps
// and passes every record to next. It lets Info records through to
// Handle even when next logs only warnings, so that deliveries are seen.
//
// next's WithAttrs and WithGroup are called only when a record reaches
// next: a session's logger carries its attributes (session id, remote
// address) from the start, and formatting them ahead for every session
// cost about 2 % of the server's CPU under load, when next logs
// warnings only and most sessions never log one. next's Enabled must not
// depend on its attributes (true of slog's text and JSON handlers).
func (e *Events) Handler(next slog.Handler) slog.Handler {
	return &tap{ev: e, root: next, next: &lazyHandler{h: next}}
}

// tap is the slog.Handler of Events.
type tap struct {
	ev    *Events
	root  slog.Handler // next without attributes: asked Enabled
	next  *lazyHandler
	attrs []slog.Attr // from WithAttrs, outside any group
	group bool        // WithGroup was called: later attrs are not ours
}

// lazyHandler is a handler derived from parent by WithAttrs (attrs) or
// WithGroup (group), made on first use.
type lazyHandler struct {
	once   sync.Once
	parent *lazyHandler
	attrs  []slog.Attr
	group  string
	h      slog.Handler
}

func (l *lazyHandler) get() slog.Handler {
	if l.parent == nil {
		return l.h
	}
	l.once.Do(func() {
		p := l.parent.get()
		if l.group != "" {
			l.h = p.WithGroup(l.group)
		} else {
			l.h = p.WithAttrs(l.attrs)
		}
	})
	return l.h
}

func (t *tap) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelInfo || t.root.Enabled(ctx, l)
}

func (t *tap) Handle(ctx context.Context, r slog.Record) error {
	switch r.Message {
	case msgDelivered, msgDeferred, msgFailed, msgAuthBan, msgAuthAlert:
		t.record(r)
	}
	if !t.root.Enabled(ctx, r.Level) {
		return nil
	}
	return t.next.get().Handle(ctx, r)
}

func (t *tap) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return t
	}
	n := &tap{ev: t.ev, root: t.root, next: &lazyHandler{parent: t.next, attrs: as}, attrs: t.attrs, group: t.group}
	if !t.group {
		n.attrs = append(t.attrs[:len(t.attrs):len(t.attrs)], as...)
	}
	return n
}

func (t *tap) WithGroup(name string) slog.Handler {
	if name == "" {
		return t
	}
	return &tap{ev: t.ev, root: t.root, next: &lazyHandler{parent: t.next, group: name}, attrs: t.attrs, group: true}
}

// record adds the event of r to its ring.
func (t *tap) record(r slog.Record) {
	kv := map[string]slog.Value{}
	for _, a := range t.attrs {
		kv[a.Key] = a.Value.Resolve()
	}
	r.Attrs(func(a slog.Attr) bool {
		kv[a.Key] = a.Value.Resolve()
		return true
	})
	str := func(k string) string {
		v, ok := kv[k]
		if !ok {
			return ""
		}
		return v.String()
	}
	num := func(k string) int {
		var n int
		fmt.Sscan(str(k), &n)
		return n
	}
	when := r.Time
	if when.IsZero() {
		when = t.ev.now()
	}
	e := t.ev
	switch r.Message {
	case msgDelivered, msgDeferred, msgFailed:
		d := Delivery{Time: when, ID: str("id"), Rcpt: str("rcpt"), Local: str("local") == "true",
			RemoteMTA: str("remote_mta"), Error: str("err")}
		d.Outcome = map[string]string{msgDelivered: "delivered", msgDeferred: "deferred", msgFailed: "failed"}[r.Message]
		e.mu.Lock()
		e.deliveries.add(d)
		e.mu.Unlock()
	default:
		a := Anomaly{Time: when, Event: "ban", Subject: str("prefix"), Strikes: num("strikes"), Reason: str("reason")}
		if r.Message == msgAuthAlert {
			a.Event, a.Kind = "alert", str("kind")
			for _, k := range []string{"prefix", "addr", "remote", "user", "username"} {
				if s := str(k); s != "" {
					a.Subject = s
					break
				}
			}
			switch {
			case a.Reason != "":
			case str("usernames") != "":
				a.Reason = str("usernames") + " usernames tried within " + str("window")
			case str("addresses") != "":
				a.Reason = str("addresses") + " addresses tried it within " + str("window")
			}
		}
		e.mu.Lock()
		e.anomalies.add(a)
		e.mu.Unlock()
	}
}

// ring is a fixed-size buffer of the last max values added.
type ring[T any] struct {
	max  int
	buf  []T
	next int // where the next value goes, once buf is full
}

func (r *ring[T]) add(v T) {
	if len(r.buf) < r.max {
		r.buf = append(r.buf, v)
		return
	}
	r.buf[r.next] = v
	r.next = (r.next + 1) % r.max
}

func (r *ring[T]) newestFirst() []T {
	out := make([]T, 0, len(r.buf))
	n := len(r.buf)
	for i := 0; i < n; i++ {
		// The newest is just before next (or at the end while filling).
		j := ((r.next-1-i)%n + n) % n
		if n < r.max {
			j = n - 1 - i
		}
		out = append(out, r.buf[j])
	}
	return out
}
