package spool

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"postern/internal/fsutil"
	"postern/internal/smtp"
)

// Get returns a copy of the envelope and the whole message id in
// memory, read back from its segment (and its blob). It is for small
// messages and tests: delivery reads with Open, which does not hold a
// large body in memory.
func (s *Spool) Get(id string) (*smtp.Envelope, []byte, error) {
	env, m, err := s.Open(id)
	if err != nil {
		return nil, nil, fmt.Errorf("spool: get %s: %w", id, err)
	}
	defer m.Close()
	data := make([]byte, m.Size())
	copy(data, m.Header)
	if _, err := m.Body.ReadAt(data[len(m.Header):], 0); err != nil && !(err == io.EOF && m.Body.Size() == 0) {
		return nil, nil, fmt.Errorf("spool: get %s: read body: %w", id, err)
	}
	return env, data, nil
}

// Open returns a copy of the envelope of message id and the message,
// for reading: its header section in memory, its body in memory (a
// small one, read from the segment) or in its blob file. Close the
// Message when done. Open fails with ErrNotFound for a message that is
// not in the spool (a message in a blob leaves it once it is done).
func (s *Spool) Open(id string) (*smtp.Envelope, *Message, error) {
	s.mu.RLock()
	defer s.mu.RUnlock() // held during the reads: removals take mu
	e, data, f, err := s.readRecordData(id)
	if err != nil {
		return nil, nil, err
	}
	m := &Message{}
	if e.blob == nil {
		end := smtp.HeaderEnd(data)
		m.Header, m.Body = data[:end], smtp.BodyBytes(data[end:])
		return e.env.Clone(), m, nil
	}
	m.Header, m.Body, m.f = data, smtp.BodyFile(f, e.blob.off, e.blob.n), f
	return e.env.Clone(), m, nil
}

// Header returns a copy of the envelope and the header section of
// message id, without reading its body.
func (s *Spool) Header(id string) (*smtp.Envelope, []byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, data, f, err := s.readRecordData(id)
	if err != nil {
		return nil, nil, err
	}
	if f != nil {
		f.Close()
	}
	if e.blob == nil {
		data = data[:smtp.HeaderEnd(data)]
	}
	return e.env.Clone(), data, nil
}

// readRecordData returns the index entry of message id and the message
// data of its record: the whole message from its segment, or the header
// section of a message in a blob, with the blob open (f, which the
// caller closes); mu must be held.
func (s *Spool) readRecordData(id string) (e *entry, data []byte, f *os.File, err error) {
	if s.closed {
		return nil, nil, nil, fmt.Errorf("spool: open %s: %w", id, ErrClosed)
	}
	e, ok := s.index[id]
	if !ok {
		return nil, nil, nil, fmt.Errorf("spool: open %s: %w", id, ErrNotFound)
	}
	r, path := io.ReaderAt(nil), ""
	if e.seg != nil {
		r, path = e.seg.f, e.seg.path
	} else {
		path = s.blobPath(id)
		if f, err = os.Open(path); err != nil {
			return nil, nil, nil, fmt.Errorf("spool: open %s: %w", id, err)
		}
		r = f
	}
	data = make([]byte, e.dataLen)
	if _, err := r.ReadAt(data, e.off+recordHeaderLen+e.envLen); err != nil {
		if f != nil {
			f.Close()
		}
		return nil, nil, nil, fmt.Errorf("spool: open %s: read %s: %w", id, path, err)
	}
	return e, data, f, nil
}

// item builds the Item for e; mu must be held.
func (e *entry) item() Item {
	it := Item{ID: e.env.ID, From: e.env.From, Size: e.size(), ReceivedAt: e.env.ReceivedAt,
		Recipients: make([]ItemRecipient, len(e.env.Recipients))}
	for i, r := range e.env.Recipients {
		it.Recipients[i] = ItemRecipient{Addr: r, State: e.states[i]}
	}
	if e.held() {
		it.Held, it.HoldReason = true, e.holdReason()
	}
	return it
}

// holdReason says why e is held: OperatorHoldReason when an operator
// held a recipient, else the envelope's reason (a send limit's).
func (e *entry) holdReason() string {
	for _, st := range e.states {
		if st.Status == StatusHeld && st.OperatorHold {
			return OperatorHoldReason
		}
	}
	return e.env.HoldReason
}

// size returns the size of the message data, its blob included.
func (e *entry) size() int64 {
	if e.blob != nil {
		return e.dataLen + e.blob.n
	}
	return e.dataLen
}

// Lookup returns the Item of message id, done or not, as long as the
// spool still holds it.
func (s *Spool) Lookup(id string) (Item, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.index[id]
	if !ok {
		return Item{}, fmt.Errorf("spool: lookup %s: %w", id, ErrNotFound)
	}
	return e.item(), nil
}

// List returns every live message (at least one recipient not final),
// ordered by id, that is by arrival.
func (s *Spool) List() []Item {
	s.mu.RLock()
	items := make([]Item, 0, len(s.index))
	for _, e := range s.index {
		if !e.done {
			items = append(items, e.item())
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(items, func(a, b Item) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return items
}

// Watch registers fn to be called with the id of every message Put makes
// durable from now on, after its Put is answered. fn runs on the
// goroutine that made it durable (the writer's, or for a message in a
// blob the PutMessage caller's) and must not block. The returned
// function unregisters fn.
func (s *Spool) Watch(fn func(id string)) (stop func()) {
	s.mu.Lock()
	s.watchSeq++
	k := s.watchSeq
	s.watchers[k] = fn
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		delete(s.watchers, k)
		s.mu.Unlock()
	}
}

// MarkRecipientSync records st as the state of recipient rcpt of
// message id, synchronously: it returns after the state is committed to
// the state store (commits from concurrent calls are batched), so that
// the state survives a crash from then on. A recipient whose state is
// final keeps it: an attempt that was in flight when an operator deleted
// the message does not bring it back. A held recipient stays held
// unless st is final: an attempt that was in flight when an operator
// held it records its attempt and error, and nothing more is tried
// until a release; one that delivered or failed for good ends the hold. When every recipient is final the
// message is done; a segment whose messages are all done, other than the
// one being appended to, is then deleted.
func (s *Spool) MarkRecipientSync(id, rcpt string, st RecipientState) error {
	return s.markRecipient(id, rcpt, st, true)
}

// MarkRecipientAsync is MarkRecipientSync without waiting for the
// commit: the state takes effect at once in memory (the queue, the
// runner and the admin API see it) and is committed with the next state
// commit, a few milliseconds later (the writer lingers stateLinger to
// gather more outcomes into one transaction). The queue runner records
// its outcomes with it, so that a delivery worker goes on to the next
// message instead of waiting two fdatasyncs for each state. Delivery is
// at least once either way: a crash before the commit means the
// recipient is attempted again after the restart, as it was when the
// crash came between delivery and a waited-for commit. A commit that
// fails is logged; Close commits what is queued.
func (s *Spool) MarkRecipientAsync(id, rcpt string, st RecipientState) error {
	return s.markRecipient(id, rcpt, st, false)
}

func (s *Spool) markRecipient(id, rcpt string, st RecipientState, wait bool) error {
	if st.Updated.IsZero() {
		st.Updated = time.Now()
	}
	return s.update(id, wait, func(e *entry) error {
		i := slices.Index(e.env.Recipients, rcpt)
		if i < 0 {
			return fmt.Errorf("spool: mark %s %s: %w", id, rcpt, ErrNoRecipient)
		}
		switch cur := e.states[i]; {
		case cur.Status.Final():
		case cur.Status == StatusHeld && !st.Status.Final():
			// An attempt that was in flight when an operator held the
			// recipient: its outcome is kept, and so is the hold.
			st.Status, st.NextAttempt, st.OperatorHold = StatusHeld, time.Time{}, cur.OperatorHold
			e.states[i] = st
		default:
			e.states[i] = st
		}
		return nil
	})
}

// Delete marks every recipient of message id that is not final (held
// ones too) as removed: nothing more is delivered and no bounce is sent.
func (s *Spool) Delete(id string) error {
	now := time.Now()
	return s.update(id, true, func(e *entry) error {
		for i, st := range e.states {
			if OpDelete.Changes(st.Status) {
				e.states[i] = OpDelete.apply(st, now)
			}
		}
		return nil
	})
}

// update changes the in-memory state of message id with fn, commits it
// (and waits for the commit when wait is set), and deletes the message's
// segment when this made it the last live one. A segment deleted before
// its messages' last states are committed is harmless: the writer skips
// messages no longer in the index, and Open discards states whose
// segment is gone.
func (s *Spool) update(id string, wait bool, fn func(*entry) error) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("spool: update %s: %w", id, ErrClosed)
	}
	e, ok := s.index[id]
	if !ok {
		s.mu.Unlock()
		return fmt.Errorf("spool: update %s: %w", id, ErrNotFound)
	}
	nowDone, err := s.changeLocked(e, fn)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	seg := e.seg
	s.puts.Add(1) // keeps Close from closing the store under us
	s.mu.Unlock()
	defer s.puts.Done()

	if !wait {
		s.queueState(id)
	} else if err := s.commitState(id); err != nil {
		return fmt.Errorf("spool: update %s: state: %w", id, err)
	}
	if nowDone && seg != nil {
		s.maybeRemoveSegment(seg)
	}
	return nil
}

// changeLocked changes the in-memory states of e with fn and keeps the
// counts right: the held messages, the live messages, the segment's live
// messages. It reports whether the change made e done; mu must be held.
// When fn fails, e must be as it was.
func (s *Spool) changeLocked(e *entry, fn func(*entry) error) (nowDone bool, err error) {
	wasHeld := !e.done && e.held()
	if err := fn(e); err != nil {
		return false, err
	}
	nowDone = !e.done && allFinal(e.states)
	isHeld := !e.done && !nowDone && e.held()
	if wasHeld != isHeld {
		if isHeld {
			s.held++
		} else {
			s.held--
		}
		s.m.Held.Set(float64(s.held))
	}
	if nowDone {
		e.done = true
		if e.seg != nil {
			e.seg.live--
		}
		s.m.Messages.Dec()
	}
	return nowDone, nil
}

// removeDoneSegments deletes every inactive segment with no live message.
func (s *Spool) removeDoneSegments() {
	s.mu.RLock()
	var segs []*segment
	for _, seg := range s.segs {
		segs = append(segs, seg)
	}
	s.mu.RUnlock()
	for _, seg := range segs {
		s.maybeRemoveSegment(seg)
	}
}

// maybeRemoveSegment deletes seg when it is not active and has no live
// message: the file first (and durably), then its messages' states, so a
// crash in between leaves only orphan states, which Open discards.
func (s *Spool) maybeRemoveSegment(seg *segment) {
	s.mu.Lock()
	if seg == s.active || seg.live > 0 || s.segs[seg.num] != seg {
		s.mu.Unlock()
		return
	}
	delete(s.segs, seg.num)
	for _, id := range seg.ids {
		if e := s.index[id]; e != nil && e.seg == seg {
			delete(s.index, id)
		}
	}
	s.mu.Unlock()
	seg.f.Close()
	if err := os.Remove(seg.path); err != nil {
		s.log.Error("queue: remove segment", "segment", seg.path, "err", err)
		return
	}
	if err := fsutil.SyncDir(s.segDir); err != nil {
		s.log.Error("queue: remove segment: sync directory", "segment", seg.path, "err", err)
		return
	}
	if err := deleteStates(s.db, seg.ids); err != nil {
		s.log.Error("queue: remove segment: delete states", "segment", seg.path, "err", err)
		return
	}
	s.log.Info("queue: segment removed", "segment", seg.path, "messages", len(seg.ids))
}

// RetryNow makes every deferred recipient of message id due now. It
// fails with ErrNotFound when the message is not live.
func (s *Spool) RetryNow(id string) error {
	s.mu.RLock()
	e, ok := s.index[id]
	live := ok && !e.done
	s.mu.RUnlock()
	if !live {
		return ErrNotFound
	}
	return s.update(id, true, func(e *entry) error {
		if e.done {
			return ErrNotFound
		}
		for i, st := range e.states {
			if OpRetry.Changes(st.Status) {
				e.states[i] = OpRetry.apply(st, time.Time{})
			}
		}
		return nil
	})
}

// Release makes the held recipients of message id pending (OpRelease),
// so that the Runner delivers them (Runner.Release also wakes it). The release is
// durable: it returns after the new states are in the state store, and
// the message stays released after a restart although its record still
// says Hold. It fails with ErrNotFound when the message is not live and
// with ErrNotHeld when no recipient of it is held.
func (s *Spool) Release(id string) error {
	now := time.Now()
	err := s.update(id, true, func(e *entry) error {
		if e.done {
			return ErrNotFound
		}
		if !e.held() {
			return ErrNotHeld
		}
		for i, st := range e.states {
			if OpRelease.Changes(st.Status) {
				e.states[i] = OpRelease.apply(st, now)
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("spool: release %s: %w", id, err)
	}
	return err
}

// Held returns how many live messages have a held recipient.
func (s *Spool) Held() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.held
}

// Oldest returns the arrival time of the oldest live message that is not
// held; zero when there is none. A held message is not work the queue
// owes: it must not age the queue.
func (s *Spool) Oldest() time.Time {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var t time.Time
	for _, e := range s.index {
		if !e.done && !e.held() && !e.env.ReceivedAt.IsZero() && (t.IsZero() || e.env.ReceivedAt.Before(t)) {
			t = e.env.ReceivedAt
		}
	}
	return t
}
