package queue

// What an operator's commands (`postern queue`, through the admin API)
// need of the Runner: which recipients are being delivered now, and
// changes to the spool (Spool.Change) that the Runner must act on.
//
// A recipient is active, being delivered now, from the moment its
// deliverer is handed it (Deliver, or the DeliverBatch of its domain)
// until that call returns. Recipients due but waiting for a delivery
// slot are not active.
//
// An operator's change and an attempt in flight: the attempt is not
// interrupted (a remote server may have the message already; SMTP
// cannot take it back). Its outcome is then recorded as
// Spool.MarkRecipientSync says: a deleted recipient stays removed, a
// held one stays held (with the attempt counted). A permanent failure
// of a recipient deleted during its attempt, or between the attempt and
// the end of its pass, is not bounced (undeleted).

import (
	"maps"
	"slices"
	"sync"

	"postern/internal/spool"
)

// active is the set of recipients being delivered now, by message id,
// with a count for each: a recipient may be in two attempts at once
// when its address is listed twice.
type active struct {
	mu sync.Mutex
	m  map[string]map[string]int
}

// begin marks rcpts of message id active.
func (a *active) begin(id string, rcpts ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil {
		a.m = make(map[string]map[string]int)
	}
	if a.m[id] == nil {
		a.m[id] = make(map[string]int)
	}
	for _, r := range rcpts {
		a.m[id][r]++
	}
}

// end marks rcpts of message id no longer active.
func (a *active) end(id string, rcpts ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range rcpts {
		if a.m[id][r]--; a.m[id][r] <= 0 {
			delete(a.m[id], r)
		}
	}
	if len(a.m[id]) == 0 {
		delete(a.m, id)
	}
}

// Active returns the recipients being delivered now, by message id, each
// list sorted: a snapshot.
func (r *Runner) Active() map[string][]string {
	r.active.mu.Lock()
	defer r.active.mu.Unlock()
	out := make(map[string][]string, len(r.active.m))
	for id, rcpts := range r.active.m {
		out[id] = slices.Sorted(maps.Keys(rcpts))
	}
	return out
}

// Change makes an operator's change, Spool.Change, and then wakes the
// Runner for each message whose recipients it released or made due, so
// that they are tried now.
func (r *Runner) Change(ids []string, op spool.Op, sel spool.Select) ([]spool.Changed, error) {
	changed, err := r.spool.Change(ids, op, sel)
	if err != nil {
		return nil, err
	}
	if op == spool.OpRelease || op == spool.OpRetry {
		for _, c := range changed {
			if op == spool.OpRelease {
				r.opts.Metrics.Released.Inc()
			}
			r.takeNow(c.ID)
		}
	}
	return changed, nil
}

// takeNow makes the Runner take message id now, instead of at its
// scheduled time.
func (r *Runner) takeNow(id string) {
	r.mu.Lock()
	r.sched.remove(id)
	r.mu.Unlock()
	r.enqueue(id)
}

// undeleted returns the outcomes of hs whose recipients are not final
// now, that is that no operator deleted since their attempt, nor the
// message: only those are reported and recorded. (This pass is the only
// one to deliver or fail them.)
func (p *pass) undeleted(hs []held) []held {
	if len(hs) == 0 {
		return hs
	}
	it, err := p.r.spool.Lookup(p.id)
	if err != nil {
		p.log.Info("queue: message gone before its outcomes were reported", "rcpts", len(hs))
		return nil
	}
	final := make(map[string]bool, len(it.Recipients))
	for _, rc := range it.Recipients {
		final[rc.Addr] = rc.State.Status.Final()
	}
	out := hs[:0]
	for _, h := range hs {
		if final[h.rcpt] {
			p.log.Info("queue: recipient deleted during its attempt: no report", "rcpt", h.rcpt)
			continue
		}
		out = append(out, h)
	}
	return out
}
