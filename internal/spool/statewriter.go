package spool

import (
	"time"

	bolt "go.etcd.io/bbolt"
)

// maxStateBatch bounds the messages one state commit writes.
const maxStateBatch = 1024

// stateLinger is how long a commit of states nobody waits for
// (MarkRecipientAsync) waits for more: under load, delivery outcomes then
// share a transaction (two fdatasyncs) by the dozen instead of by two or
// three, and the window in which a crash repeats a delivery grows by
// this much. A request somebody waits for ends the wait at once.
const stateLinger = 2 * time.Millisecond

// stateReq asks the state writer to commit the current state of a message.
type stateReq struct {
	id   string
	done chan error
}

// commitState returns after the in-memory state of message id, as it is
// at some instant after the call, is committed to the state store.
//
// State commits are grouped like Puts: one goroutine commits in one bbolt
// transaction every request that arrived while the previous transaction
// ran, without the fixed delay db.Batch waits (10 ms by default, which
// caps four delivery workers at about 400 commits a second).
func (s *Spool) commitState(id string) error {
	r := stateReq{id: id, done: make(chan error, 1)}
	s.stateReqs <- r
	return <-r.done
}

// queueState asks for the state of message id to be committed with the
// next state commit, without waiting for it: a failed commit is logged.
func (s *Spool) queueState(id string) {
	s.stateReqs <- stateReq{id: id}
}

// stateWriter is the goroutine that commits states.
func (s *Spool) stateWriter() {
	defer close(s.stateDone)
	var batch []stateReq
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	for r := range s.stateReqs {
		batch = append(batch[:0], r)
		waited := r.done != nil
	drain:
		for len(batch) < maxStateBatch {
			select {
			case r, ok := <-s.stateReqs:
				if !ok {
					break drain
				}
				batch = append(batch, r)
				waited = waited || r.done != nil
			default:
				break drain
			}
		}
		if !waited && len(batch) < maxStateBatch {
			linger.Reset(stateLinger)
		wait:
			for len(batch) < maxStateBatch {
				select {
				case r, ok := <-s.stateReqs:
					if !ok {
						break wait
					}
					batch = append(batch, r)
					if r.done != nil {
						break wait
					}
				case <-linger.C:
					break wait
				}
			}
			linger.Stop()
		}
		// Each message's state is encoded when the transaction runs, so
		// a later commit never carries an older state than an earlier one.
		err := s.db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(stateBucket)
			seen := make(map[string]bool, len(batch))
			for _, r := range batch {
				if seen[r.id] {
					continue
				}
				seen[r.id] = true
				s.mu.RLock()
				e := s.index[r.id]
				var v []byte
				if e != nil { // nil: done, and its segment removed
					v = encodeStates(e.env.Recipients, e.states)
				}
				s.mu.RUnlock()
				if v == nil {
					continue
				}
				if err := b.Put([]byte(r.id), v); err != nil {
					return err
				}
			}
			return nil
		})
		if err == nil {
			s.removeDoneBlobs(batch)
		}
		lazy := 0
		for _, r := range batch {
			if r.done == nil {
				lazy++
				continue
			}
			r.done <- err
		}
		if err != nil && lazy > 0 {
			s.log.Error("queue: commit delivery states", "messages", lazy, "err", err)
		}
	}
}

// removeDoneBlobs removes the messages in blobs of a committed batch
// that are done: their final states are durable, so nothing will read
// them again, even after a crash. The index entry goes first (Open then
// finds nothing), then the file, then the stored states (a crash before
// that leaves only states without a message, which Open discards).
func (s *Spool) removeDoneBlobs(batch []stateReq) {
	var ids []string
	s.mu.Lock()
	for _, r := range batch {
		if e := s.index[r.id]; e != nil && e.done && e.seg == nil {
			delete(s.index, r.id)
			ids = append(ids, r.id)
		}
	}
	s.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	for _, id := range ids {
		s.removeBlob(id)
	}
	if err := deleteStates(s.db, ids); err != nil {
		s.log.Error("queue: delete the states of messages done", "messages", len(ids), "err", err)
	}
}
