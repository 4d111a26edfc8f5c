package spool

import (
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Status is the delivery status of one recipient of one message.
type Status uint8

// The statuses. A recipient with no stored state is StatusPending, or
// StatusHeld when its message's Envelope.Hold is set: the spool writes
// state only when delivery (or an operator) changes it.
const (
	// StatusPending means no delivery attempt has finished yet.
	StatusPending Status = iota
	// StatusDeferred means an attempt failed temporarily; the next one is
	// due at RecipientState.NextAttempt.
	StatusDeferred
	// StatusDelivered means the recipient's mail was delivered (final).
	StatusDelivered
	// StatusFailed means delivery failed permanently; a bounce is due (final).
	StatusFailed
	// StatusRemoved means an operator deleted the message (final).
	StatusRemoved
	// StatusHeld means the message is held for review: nothing is tried
	// (no attempt, no retry, no expiry) until an operator releases it
	// (it becomes pending) or deletes it (removed). Not final.
	StatusHeld
)

// String returns the lower-case name of s.
func (s Status) String() string {
	switch s {
	case StatusPending:
		return "pending"
	case StatusDeferred:
		return "deferred"
	case StatusDelivered:
		return "delivered"
	case StatusFailed:
		return "failed"
	case StatusRemoved:
		return "removed"
	case StatusHeld:
		return "held"
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// Final reports whether s ends the life of a recipient: nothing more will
// be tried for it.
func (s Status) Final() bool {
	return s == StatusDelivered || s == StatusFailed || s == StatusRemoved
}

// RecipientState is the delivery state of one recipient of one message.
type RecipientState struct {
	// Status is where the recipient stands.
	Status Status
	// Attempts counts finished delivery attempts.
	Attempts int
	// NextAttempt is when the next attempt is due; zero means now.
	NextAttempt time.Time
	// LastError is the error of the last failed attempt, for operators and
	// bounces.
	LastError string
	// Updated is when the state last changed; zero when never.
	Updated time.Time
	// Code is the enhanced status code of the last attempt (RFC 3463),
	// such as "5.1.1"; "" when unknown.
	Code string
	// Diagnostic is the last attempt's outcome as a DSN Diagnostic-Code
	// (RFC 3464 §2.3.6), such as "smtp; 550 5.1.1 User unknown"; "" when
	// none.
	Diagnostic string
	// RemoteMTA is the host the last attempt talked to; "" when none or
	// local.
	RemoteMTA string
	// Warned is set once a delay warning went to the sender (at most one
	// per recipient).
	Warned bool
	// OperatorHold is set on a recipient an operator held (OpHold): its
	// message's HoldReason is then OperatorHoldReason.
	OperatorHold bool
}

var stateBucket = []byte("state")

// State encodings. Version 1 is a uvarint count, then per recipient the
// address, a status byte, the attempts, next attempt and update time
// (varint Unix nanoseconds, 0 for zero) and the last error. Version 2
// starts with the bytes 0x00 0x02 (a version-1 count is never 0: a
// message has a recipient) and adds to each recipient a flags byte (bit
// 0 Warned, bit 1 OperatorHold), Code, Diagnostic and RemoteMTA. A
// reader that knows no bit 1 reads a recipient held by an operator as
// held, without the reason.
const stateVersion = 2

// The flag bits of RecipientState.Warned and OperatorHold.
const (
	stateFlagWarned       = 1
	stateFlagOperatorHold = 2
)

// encodeStates encodes the states of a message's recipients, in envelope
// order, in the newest encoding.
func encodeStates(rcpts []string, st []RecipientState) []byte {
	b := []byte{0, stateVersion}
	b = binary.AppendUvarint(b, uint64(len(st)))
	for i, s := range st {
		b = appendString(b, rcpts[i])
		b = append(b, byte(s.Status))
		b = binary.AppendUvarint(b, uint64(s.Attempts))
		b = binary.AppendVarint(b, unixNano(s.NextAttempt))
		b = binary.AppendVarint(b, unixNano(s.Updated))
		b = appendString(b, s.LastError)
		var flags byte
		if s.Warned {
			flags |= stateFlagWarned
		}
		if s.OperatorHold {
			flags |= stateFlagOperatorHold
		}
		b = append(b, flags)
		b = appendString(b, s.Code)
		b = appendString(b, s.Diagnostic)
		b = appendString(b, s.RemoteMTA)
	}
	return b
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// decodeStates decodes what encodeStates wrote, in any version, and
// matches it to rcpts by address; recipients not found stay pending.
func decodeStates(b []byte, rcpts []string) ([]RecipientState, error) {
	out := make([]RecipientState, len(rcpts))
	version := 1
	if len(b) >= 2 && b[0] == 0 {
		version = int(b[1])
		if version < 2 || version > stateVersion {
			return nil, fmt.Errorf("%w: unknown state version %d", errCorrupt, version)
		}
		b = b[2:]
	}
	d := &decoder{b: b}
	n := d.uvarint()
	for i := uint64(0); i < n && d.err == nil; i++ {
		addr := d.string()
		s := RecipientState{Status: Status(d.byte())}
		s.Attempts = int(d.uvarint())
		s.NextAttempt = fromUnixNano(d.varint())
		s.Updated = fromUnixNano(d.varint())
		s.LastError = d.string()
		if version >= 2 {
			flags := d.byte()
			s.Warned = flags&stateFlagWarned != 0
			s.OperatorHold = flags&stateFlagOperatorHold != 0
			s.Code = d.string()
			s.Diagnostic = d.string()
			s.RemoteMTA = d.string()
		}
		if d.err != nil {
			break
		}
		for j, r := range rcpts {
			if r == addr {
				out[j] = s
				break
			}
		}
	}
	if d.err != nil {
		return nil, d.err
	}
	return out, nil
}

// openState opens (creating when needed) the bbolt file and its bucket.
func openState(path string) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(stateBucket)
		return err
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// loadStates reads every stored state, keyed by message id.
func loadStates(db *bolt.DB) (map[string][]byte, error) {
	m := make(map[string][]byte)
	err := db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(stateBucket).ForEach(func(k, v []byte) error {
			m[string(k)] = append([]byte(nil), v...)
			return nil
		})
	})
	return m, err
}

// deleteStates removes the stored states of ids.
func deleteStates(db *bolt.DB, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	return db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(stateBucket)
		for _, id := range ids {
			if err := b.Delete([]byte(id)); err != nil {
				return err
			}
		}
		return nil
	})
}
