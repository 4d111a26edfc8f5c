package spool

import (
	"errors"
	"fmt"
	"time"
)

// Op is a change an operator makes to the recipients of queued messages
// (Change): `postern queue delete`, `hold`, `release` and `retry`.
type Op uint8

// The operators' changes.
const (
	// OpDelete makes a recipient not yet final removed: nothing more is
	// delivered to it, and no bounce is sent.
	OpDelete Op = iota + 1
	// OpHold holds a pending or deferred recipient (StatusHeld, with
	// RecipientState.OperatorHold): nothing is tried for it until an
	// operator releases it. Its attempts and last error are kept.
	OpHold
	// OpRelease makes a held recipient, held by an operator or by a send
	// limit, pending: it is delivered now. Its attempts and last error
	// are kept.
	OpRelease
	// OpRetry makes a deferred recipient due now.
	OpRetry
)

// OperatorHoldReason is the HoldReason of a message an operator held.
const OperatorHoldReason = "held by operator"

// String returns the verb of op: "delete", "hold", "release", "retry".
func (op Op) String() string {
	switch op {
	case OpDelete:
		return "delete"
	case OpHold:
		return "hold"
	case OpRelease:
		return "release"
	case OpRetry:
		return "retry"
	}
	return fmt.Sprintf("op(%d)", uint8(op))
}

// Changes reports whether op changes a recipient whose status is st:
// OpDelete any status not final, OpHold pending and deferred, OpRelease
// held, OpRetry deferred.
func (op Op) Changes(st Status) bool {
	switch op {
	case OpDelete:
		return !st.Final()
	case OpHold:
		return st == StatusPending || st == StatusDeferred
	case OpRelease:
		return st == StatusHeld
	case OpRetry:
		return st == StatusDeferred
	}
	return false
}

// apply returns st changed by op at now; op.Changes(st.Status) holds.
func (op Op) apply(st RecipientState, now time.Time) RecipientState {
	switch op {
	case OpDelete:
		return RecipientState{Status: StatusRemoved, Attempts: st.Attempts, LastError: "deleted by operator", Updated: now}
	case OpHold:
		st.Status, st.OperatorHold, st.NextAttempt, st.Updated = StatusHeld, true, time.Time{}, now
	case OpRelease:
		st.Status, st.OperatorHold, st.NextAttempt, st.Updated = StatusPending, false, time.Time{}, now
	case OpRetry:
		st.NextAttempt = time.Time{}
	}
	return st
}

// Select picks the recipients an operator's change applies to. Change
// calls it under the spool's lock with the message id, its sender, the
// recipient and the recipient's current state, for each recipient the
// change could apply to; it must be quick and must not call the Spool.
// A nil Select picks every recipient.
type Select func(id, from, rcpt string, st RecipientState) bool

// Changed is what Change did to one message.
type Changed struct {
	// ID is the message's queue id.
	ID string
	// Recipients are the recipients changed, in envelope order.
	Recipients []string
	// Done is set when the change made the message done (a deletion of
	// its last recipients not final).
	Done bool
}

// Change applies op to the recipients sel picks, among those op changes
// (Op.Changes), of each live message of ids, and returns what it
// changed, once the new states are committed to the state store. Ids not
// in the spool, or done, are skipped; an id listed twice counts once.
//
// Each message changes at once: its recipients are picked and changed
// under the spool's lock, so that no delivery outcome, and no other
// change, comes in between, and its new states are committed together.
// A crash leaves every message as it was before Change or as Change
// left it, never in between. Across messages Change is not atomic: a
// crash in the middle of a long list leaves the messages before it
// changed. An attempt in flight when a recipient is deleted or held
// ends as usual; MarkRecipient keeps the deletion, and the hold (see
// there).
func (s *Spool) Change(ids []string, op Op, sel Select) ([]Changed, error) {
	if !op.valid() {
		return nil, fmt.Errorf("spool: change: unknown %v", op)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, fmt.Errorf("spool: %v: %w", op, ErrClosed)
	}
	s.puts.Add(1) // keeps Close from closing the store under us
	s.mu.Unlock()
	defer s.puts.Done()
	now := time.Now()
	var out []Changed
	var segs []*segment // segments in which a message became done
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		s.mu.Lock()
		e, ok := s.index[id]
		if !ok || e.done {
			s.mu.Unlock()
			continue
		}
		var rcpts []string
		nowDone, _ := s.changeLocked(e, func(e *entry) error {
			for i, r := range e.env.Recipients {
				st := e.states[i]
				if !op.Changes(st.Status) || (sel != nil && !sel(id, e.env.From, r, st)) {
					continue
				}
				e.states[i] = op.apply(st, now)
				rcpts = append(rcpts, r)
			}
			return nil
		})
		if nowDone && e.seg != nil {
			segs = append(segs, e.seg)
		}
		s.mu.Unlock()
		if len(rcpts) > 0 {
			out = append(out, Changed{ID: id, Recipients: rcpts, Done: nowDone})
		}
	}
	err := s.commitStates(out)
	for _, seg := range segs {
		s.maybeRemoveSegment(seg)
	}
	if err != nil {
		return nil, fmt.Errorf("spool: %v: state: %w", op, err)
	}
	return out, nil
}

// valid reports whether op is one of the operators' changes.
func (op Op) valid() bool { return op >= OpDelete && op <= OpRetry }

// commitStates returns once the states of the messages changed are
// committed: the state writer commits them in as few transactions as it
// can (up to maxStateBatch messages each).
func (s *Spool) commitStates(changed []Changed) error {
	done := make(chan error, len(changed))
	for _, c := range changed {
		s.stateReqs <- stateReq{id: c.ID, done: done}
	}
	var errs []error
	for range changed {
		if err := <-done; err != nil && len(errs) == 0 {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
