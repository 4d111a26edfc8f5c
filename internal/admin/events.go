package admin

import (
	"sync"
	"time"

	"postern/internal/admission"
	"postern/internal/queue"
)

// Events keeps what the status page shows of the server's recent past:
// the last delivery reports and auth anomalies, in two rings of bounded
// size, and the messages accepted, delivered, deferred and bounced in
// each minute of the last hour. It is an observer: cmd passes its
// methods to the parts that decide these things (the queue runner's
// RunnerOptions.Observe, the abuse engine's OnBan and OnAlert, the
// spooler of the SMTP listeners), so the page never depends on what the
// log says. An Events is safe for concurrent use.
type Events struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	mu         sync.Mutex
	deliveries ring[queue.Report]
	anomalies  ring[Anomaly]
	minutes    [activityMinutes]Minute // by Unix minute modulo activityMinutes
}

// activityMinutes is how many minutes Activity covers.
const activityMinutes = 60

// NewEvents returns an Events that keeps the last n delivery reports
// and the last n auth anomalies.
func NewEvents(n int) *Events {
	if n < 1 {
		n = 1
	}
	return &Events{deliveries: ring[queue.Report]{max: n}, anomalies: ring[Anomaly]{max: n}}
}

// Anomaly is one auth-abuse event: a ban the engine made, or an alert.
type Anomaly struct {
	// Time is when it happened.
	Time time.Time `json:"time"`
	// Event is "ban" or "alert".
	Event string `json:"event"`
	// Kind is the alert's kind (bruteforce, stuffing, distributed), or
	// the ban's scope (ip, prefix, site).
	Kind string `json:"kind,omitempty"`
	// Subject is the banned prefix, or what the alert is about (a
	// prefix, an address or a username).
	Subject string `json:"subject,omitempty"`
	// Strikes is the ban's strike count, 0 when not given.
	Strikes int `json:"strikes,omitempty"`
	// Reason says why.
	Reason string `json:"reason,omitempty"`
}

// Minute counts what happened in one minute.
type Minute struct {
	// Start is the start of the minute.
	Start time.Time
	// Accepted counts messages accepted (SMTP and local submission);
	// Delivered, Deferred and Bounced count delivery reports, one per
	// recipient and attempt (Bounced: failed for good).
	Accepted, Delivered, Deferred, Bounced int
}

// Delivery records a delivery report; it has the shape of
// queue.RunnerOptions.Observe.
func (e *Events) Delivery(r queue.Report) {
	if r.Time.IsZero() {
		r.Time = e.now()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.deliveries.add(r)
	m := e.minute(r.Time)
	switch r.Outcome {
	case queue.OutcomeDelivered:
		m.Delivered++
	case queue.OutcomeDeferred:
		m.Deferred++
	case queue.OutcomeFailed:
		m.Bounced++
	}
}

// Accepted records a message accepted at t.
func (e *Events) Accepted(t time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.minute(t).Accepted++
}

// Ban records a ban the abuse engine put; it has the shape of
// admission.AbuseOptions.OnBan.
func (e *Events) Ban(b admission.BanEvent) {
	e.addAnomaly(Anomaly{Time: b.Time, Event: "ban", Kind: b.Scope, Subject: b.Ban.Prefix.String(),
		Strikes: b.Ban.Strikes, Reason: b.Ban.Reason})
}

// Alert records an alert of the abuse engine; it has the shape of
// admission.AbuseOptions.OnAlert.
func (e *Events) Alert(a admission.Alert) {
	e.addAnomaly(Anomaly{Time: a.Time, Event: "alert", Kind: a.Kind, Subject: a.Subject(),
		Strikes: a.Strikes, Reason: a.Describe()})
}

func (e *Events) addAnomaly(a Anomaly) {
	if a.Time.IsZero() {
		a.Time = e.now()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.anomalies.add(a)
}

// minute returns the counts of the minute of t, started afresh when the
// slot held an older minute. Called with mu held.
func (e *Events) minute(t time.Time) *Minute {
	start := t.Truncate(time.Minute)
	m := &e.minutes[slot(start)]
	if !m.Start.Equal(start) {
		if m.Start.After(start) {
			return &Minute{} // older than the hour kept: dropped
		}
		*m = Minute{Start: start}
	}
	return m
}

// slot is the index of the minute starting at start.
func slot(start time.Time) int {
	return int(start.Unix()/60%activityMinutes+activityMinutes) % activityMinutes
}

// Activity returns the counts of the last 60 minutes up to now, the
// current minute last; a minute without events has zero counts.
func (e *Events) Activity(now time.Time) []Minute {
	out := make([]Minute, activityMinutes)
	cur := now.Truncate(time.Minute)
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := range out {
		start := cur.Add(time.Duration(i-activityMinutes+1) * time.Minute)
		if m := e.minutes[slot(start)]; m.Start.Equal(start) {
			out[i] = m
		} else {
			out[i] = Minute{Start: start}
		}
	}
	return out
}

// Deliveries returns the recorded delivery reports, newest first.
func (e *Events) Deliveries() []queue.Report {
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
