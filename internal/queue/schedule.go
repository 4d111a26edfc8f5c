package queue

import (
	"container/heap"
	"context"
	"time"
)

// schedule is the set of messages waiting for a next attempt, earliest
// first: a min-heap of wake-up times with an index by message id. The
// Runner's mu guards it.
type schedule struct {
	h     schedHeap
	index map[string]*schedItem
}

type schedItem struct {
	id  string
	at  time.Time
	pos int // in the heap
}

type schedHeap []*schedItem

func (h schedHeap) Len() int           { return len(h) }
func (h schedHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h schedHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].pos, h[j].pos = i, j
}
func (h *schedHeap) Push(x any) {
	it := x.(*schedItem)
	it.pos = len(*h)
	*h = append(*h, it)
}
func (h *schedHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return it
}

func newSchedule() schedule { return schedule{index: make(map[string]*schedItem)} }

// set makes id due at at, replacing any earlier entry; it reports whether
// id is now the earliest.
func (s *schedule) set(id string, at time.Time) bool {
	if it := s.index[id]; it != nil {
		it.at = at
		heap.Fix(&s.h, it.pos)
	} else {
		it = &schedItem{id: id, at: at}
		heap.Push(&s.h, it)
		s.index[id] = it
	}
	return s.h[0].id == id
}

// remove drops id's entry, if any.
func (s *schedule) remove(id string) {
	if it := s.index[id]; it != nil {
		heap.Remove(&s.h, it.pos)
		delete(s.index, id)
	}
}

// popDue removes and returns the ids due at now.
func (s *schedule) popDue(now time.Time) []string {
	var ids []string
	for len(s.h) > 0 && !s.h[0].at.After(now) {
		it := heap.Pop(&s.h).(*schedItem)
		delete(s.index, it.id)
		ids = append(ids, it.id)
	}
	return ids
}

// earliest returns the earliest wake-up time; ok is false when none.
func (s *schedule) earliest() (time.Time, bool) {
	if len(s.h) == 0 {
		return time.Time{}, false
	}
	return s.h[0].at, true
}

func (s *schedule) len() int { return len(s.h) }

func (s *schedule) clear() {
	s.h = nil
	clear(s.index)
}

// scheduleAt wakes the Runner for message id at time at.
func (r *Runner) scheduleAt(id string, at time.Time) {
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return
	}
	first := r.sched.set(id, at)
	r.mu.Unlock()
	if first {
		signal(r.resched)
	}
}

// gaugeInterval is how often the queue age gauge is refreshed.
const gaugeInterval = 15 * time.Second

// timerLoop queues the messages whose next attempt is due, sleeping on
// one timer until the earliest of them (never polling), until ctx ends.
// It also refreshes the queue age gauge.
func (r *Runner) timerLoop(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	gauge := time.NewTicker(gaugeInterval)
	defer gauge.Stop()
	r.updateGauges()
	for {
		r.mu.Lock()
		now := r.opts.Now()
		due := r.sched.popDue(now)
		next, ok := r.sched.earliest()
		r.mu.Unlock()
		for _, id := range due {
			r.enqueue(id)
		}
		if ok {
			timer.Reset(next.Sub(now))
		}
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		case <-r.resched:
			timer.Stop()
		case <-gauge.C:
			timer.Stop()
			r.updateGauges()
		}
	}
}

// updateGauges sets the queue age gauge from the spool.
func (r *Runner) updateGauges() {
	var age float64
	if oldest := r.spool.Oldest(); !oldest.IsZero() {
		age = max(r.opts.Now().Sub(oldest).Seconds(), 0)
	}
	r.opts.Metrics.OldestSeconds.Set(age)
}
