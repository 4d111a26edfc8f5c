package spool

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"postern/internal/smtp"
)

// Group-commit limits: the writer takes up to this many messages, or
// stops adding once the batch holds this many bytes.
const (
	maxBatchMessages = 256
	maxBatchBytes    = 8 << 20
)

// putReq is one Put waiting for the writer.
type putReq struct {
	env  *smtp.Envelope
	head []byte // the record's message data: head, then body
	body []byte
	done chan error // buffered, receives the outcome once

	// mu guards the hand-over of env, head and body: the writer copies
	// them into its buffer under mu (claimed), or the caller gives up
	// before that (abandoned) and the writer skips the request. Either
	// way none is used after Put returns.
	mu        sync.Mutex
	claimed   bool
	abandoned bool
}

// Put stores the message env and data durably: it returns nil only after
// the record holding both is written and fsynced, in a segment whose
// directory entry is fsynced. Concurrent Puts share one write and one
// fsync. A body larger than InlineMax is stored in a file of its
// own, as PutMessage does. Put fails with ErrDuplicate when env.ID is
// already spooled and with ErrClosed after Close. When ctx ends first
// Put returns ctx.Err(); the message may still become durable. Put does
// not retain env or data after it returns.
func (s *Spool) Put(ctx context.Context, env *smtp.Envelope, data []byte) error {
	end := smtp.HeaderEnd(data)
	return s.PutMessage(ctx, env, &smtp.Message{Header: data[:end], Body: smtp.BodyBytes(data[end:])})
}

// checkEnvelope checks what Put and PutMessage need of env.
func checkEnvelope(env *smtp.Envelope) error {
	if env == nil || env.ID == "" || len(env.Recipients) == 0 {
		return errors.New("spool: put: envelope without id or recipients")
	}
	return nil
}

// put hands r to the writer and waits for its outcome (see Put).
func (s *Spool) put(ctx context.Context, r *putReq) error {
	if int64(len(r.head))+int64(len(r.body)) > maxDataLen {
		return fmt.Errorf("spool: put %s: message too large", r.env.ID)
	}
	done, err := s.begin(r.env.ID)
	if err != nil {
		return err
	}
	defer done()
	r.done = make(chan error, 1)
	select {
	case s.reqs <- r:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		r.mu.Lock()
		if !r.claimed {
			r.abandoned = true
		}
		r.mu.Unlock()
		return ctx.Err()
	}
}

// begin registers a Put in flight, which Close waits for; it fails
// with ErrClosed after Close. Call done when the Put returns.
func (s *Spool) begin(id string) (done func(), err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, fmt.Errorf("spool: put %s: %w", id, ErrClosed)
	}
	s.puts.Add(1)
	return s.puts.Done, nil
}

// pending is one message of the batch being committed.
type pending struct {
	r       *putReq
	env     *smtp.Envelope
	off     int64 // offset of the record in the batch buffer
	envLen  int64
	dataLen int64
}

// writer is the single goroutine that appends and fsyncs.
func (s *Spool) writer() {
	defer close(s.writerDone)
	var (
		buf   []byte
		batch []pending
		ids   = make(map[string]bool)
	)
	for r := range s.reqs {
		buf, batch = buf[:0], batch[:0]
		clear(ids)
		buf, batch = s.take(r, buf, batch, ids)
	drain:
		for len(batch) < maxBatchMessages && len(buf) < maxBatchBytes {
			select {
			case r, ok := <-s.reqs:
				if !ok {
					break drain
				}
				buf, batch = s.take(r, buf, batch, ids)
			default:
				break drain
			}
		}
		if len(batch) > 0 {
			s.commit(buf, batch)
		}
		if cap(buf) > 2*maxBatchBytes {
			buf = nil // do not keep a huge buffer after a huge message
		}
	}
}

// take claims r, checks its id and appends its record to buf.
func (s *Spool) take(r *putReq, buf []byte, batch []pending, ids map[string]bool) ([]byte, []pending) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.abandoned {
		return buf, batch
	}
	r.claimed = true
	id := r.env.ID
	s.mu.RLock()
	_, dup := s.index[id]
	s.mu.RUnlock()
	if dup || ids[id] {
		r.done <- fmt.Errorf("spool: put %s: %w", id, ErrDuplicate)
		return buf, batch
	}
	ids[id] = true
	off := len(buf)
	buf = appendRecordParts(buf, r.env, r.head, r.body, nil)
	dataLen := int64(len(r.head) + len(r.body))
	batch = append(batch, pending{
		r:       r,
		env:     r.env.Clone(),
		off:     int64(off),
		envLen:  int64(len(buf)-off) - recordHeaderLen - dataLen,
		dataLen: dataLen,
	})
	return buf, batch
}

// commit appends buf to the active segment (rotating first when it would
// grow past the segment size), fsyncs once and answers every waiter.
func (s *Spool) commit(buf []byte, batch []pending) {
	err := s.appendSync(buf)
	if err != nil {
		err = fmt.Errorf("spool: put: %w", err)
		s.log.Error("queue: group commit failed", "messages", len(batch), "err", err)
		for _, p := range batch {
			p.r.done <- err
		}
		return
	}
	seg := s.active
	base := seg.size - int64(len(buf))
	s.mu.Lock()
	for _, p := range batch {
		s.index[p.env.ID] = &entry{
			seg: seg, off: base + p.off, envLen: p.envLen, dataLen: p.dataLen,
			env: p.env, states: initialStates(p.env),
		}
		seg.ids = append(seg.ids, p.env.ID)
		if p.env.Hold {
			s.held++
			s.m.Held.Set(float64(s.held))
		}
	}
	seg.live += len(batch)
	watchers := make([]func(string), 0, len(s.watchers))
	for _, w := range s.watchers {
		watchers = append(watchers, w)
	}
	s.mu.Unlock()
	s.commits.Add(1)
	s.messages.Add(int64(len(batch)))
	s.m.BatchMessages.Observe(float64(len(batch)))
	s.m.Messages.Add(float64(len(batch)))
	for _, p := range batch {
		p.r.done <- nil
	}
	for _, p := range batch {
		for _, w := range watchers {
			w(p.env.ID)
		}
	}
}

// appendSync writes buf at the end of the active segment and fsyncs it.
// After a failure the segment is abandoned: whatever reached it is a tail
// recovery will cut or keep whole, and the next batch starts a new one.
func (s *Spool) appendSync(buf []byte) error {
	seg := s.active
	if seg.size > 0 && seg.size+int64(len(buf)) > s.segMax {
		if err := s.rotate(); err != nil {
			return err
		}
		seg = s.active
	}
	if _, err := seg.f.WriteAt(buf, seg.size); err != nil {
		s.abandonActive()
		return fmt.Errorf("write %s: %w", seg.path, err)
	}
	if s.hook != nil {
		s.hook()
	}
	start := time.Now()
	// fdatasync(2) flushes the metadata needed to read the data back,
	// the file size included, so it is enough for an append.
	err := unix.Fdatasync(int(seg.f.Fd()))
	s.m.FsyncSeconds.Observe(time.Since(start).Seconds())
	s.fsyncs.Add(1)
	if err != nil {
		s.abandonActive()
		return fmt.Errorf("fdatasync %s: %w", seg.path, err)
	}
	s.mu.Lock()
	seg.size += int64(len(buf))
	s.mu.Unlock()
	return nil
}

// rotate starts a new active segment and removes the old one if every
// message in it is already done.
func (s *Spool) rotate() error {
	old := s.active
	if err := s.newSegment(); err != nil {
		return err
	}
	s.maybeRemoveSegment(old)
	return nil
}

// abandonActive makes the next batch start a new segment.
func (s *Spool) abandonActive() {
	s.active.size = s.segMax // forces rotate on the next append
}
