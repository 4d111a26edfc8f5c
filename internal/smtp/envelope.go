package smtp

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"io"
	"maps"
	"net/netip"
	"time"
)

// Envelope is the SMTP envelope of one accepted message: what the
// session learnt of it, as the session hands it to the spool, as the
// spool stores it and as the queue delivers it. Local submission makes
// one too. It is the one definition of the envelope: a field added here
// travels from the session to delivery without a copy by hand.
type Envelope struct {
	// ID is the message's queue id (NewID), made before DATA ends (it
	// appears in the Received header field). The spool stores the
	// message under it and refuses an id it already holds.
	ID string
	// From is the reverse-path (RFC 5321 §4.1.2) without angle brackets;
	// "" is the null sender.
	From string
	// Recipients are the accepted forward-paths, without angle brackets,
	// in the order the client gave them, without duplicates. A spooled
	// message has at least one.
	Recipients []string
	// SMTPUTF8 is set when MAIL FROM carried the SMTPUTF8 parameter (RFC 6531).
	SMTPUTF8 bool
	// Body is "7BIT" or "8BITMIME" (RFC 6152), from MAIL FROM's BODY.
	Body string
	// AuthUser is the authenticated user, "" on an unauthenticated
	// session; for a local submission, the submitting Unix user
	// ("local:NAME").
	AuthUser string
	// Listener is the name of the listener the message came in on
	// ("local" for a local submission).
	Listener string
	// Remote is the client's address; the zero value when there was
	// no network client.
	Remote netip.AddrPort
	// Helo is the name the client gave in EHLO or HELO.
	Helo string
	// ReceivedAt is when the end of DATA was read.
	ReceivedAt time.Time
	// RequireTLS is set when MAIL FROM carried REQUIRETLS (RFC 8689
	// §4.1): the message may travel onward only over TLS with a verified
	// certificate (and the parameter is passed on), or it fails; a
	// TLS-Required header field is then ignored.
	RequireTLS bool
	// Hold is set on a message taken in but held for review (a user
	// over a send limit whose policy is to hold): its recipients start
	// held, and the queue delivers none of them until an operator
	// releases the message. The stored record keeps Hold; the release
	// is in the spool's state store.
	Hold bool
	// HoldReason says why the message is held, for operators (for
	// example "send limit: messages per hour"); "" when not held.
	HoldReason string
	// Ret is MAIL FROM's RET parameter (RFC 3461 §4.3), "FULL" or
	// "HDRS": whether a failure notice returns the whole message or its
	// header section; "" when the client gave none.
	Ret string
	// EnvID is MAIL FROM's ENVID parameter (RFC 3461 §4.4), decoded
	// from xtext: the sender's name for the transaction, returned in
	// notices as Original-Envelope-Id; "" when the client gave none.
	EnvID string
	// DSN holds what RCPT said about notifications (NOTIFY and ORCPT,
	// RFC 3461 §4.1 and §4.2), by recipient as in Recipients; a
	// recipient without an entry gave neither. nil when none did. Read
	// it with RcptDSN.
	DSN map[string]RcptDSN
}

// RcptDSN returns the DSN parameters of recipient rcpt: the zero value
// (no NOTIFY, no ORCPT) when it has none.
func (env *Envelope) RcptDSN(rcpt string) RcptDSN { return env.DSN[rcpt] }

// Clone returns a copy of env that shares nothing with it.
func (env *Envelope) Clone() *Envelope {
	c := *env
	c.Recipients = append([]string(nil), env.Recipients...)
	c.DSN = maps.Clone(env.DSN)
	return &c
}

// NewID returns a fresh queue id for a message received at t: 8 bytes
// of big-endian Unix nanoseconds and 4 random bytes, in base32 without
// padding with the "extended hex" alphabet (RFC 4648 §7, "0-9a-v"),
// lower case: 20 characters. The alphabet's order is the order of the
// values, so ids sort by time as strings do, and they are safe as file
// names. It is the one generator of queue ids: sessions, local
// submission and the queue's DSNs all call it.
func NewID(t time.Time) string {
	var b [12]byte
	binary.BigEndian.PutUint64(b[:8], uint64(t.UnixNano()))
	rand.Read(b[8:])
	var out [24]byte // base32.HexEncoding.EncodedLen(12), with "====" padding
	base32.HexEncoding.Encode(out[:], b[:])
	for i, c := range out[:20] {
		out[i] = lower(c)
	}
	return string(out[:20])
}

// MaxIDLen bounds a queue id as ValidID takes it: NewID makes 20
// characters; ids of older releases and of tests may differ in length.
const MaxIDLen = 64

// ValidID reports whether id can be a queue id: 1 to MaxIDLen ASCII
// letters and digits, so that it is safe as a file name and in a URL.
func ValidID(id string) bool {
	if id == "" || len(id) > MaxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// Spooler stores accepted messages durably (spool.Spool is one; so is
// delivery.Direct, in front of it). smtpd's sessions hand it each
// message they accept.
type Spooler interface {
	// PutMessage stores env and msg, and returns only after both are on
	// stable storage (fsynced file and directory); the session sends
	// 250 after it returns nil, 452 4.3.1 when it fails for want of
	// space (an error matching syscall.ENOSPC or syscall.EDQUOT), and
	// 451 4.3.0 for another failure. msg is the message exactly as it
	// will be stored (Received and any repaired header fields included),
	// with CRLF line endings, dot-unstuffed: its header section in
	// memory, its body in memory or in a file from CreateFile. It must
	// not retain msg after it returns. It fails (without storing) when
	// the id is already in the spool.
	PutMessage(ctx context.Context, env *Envelope, msg *Message) error
	// CreateFile returns a file for the message id, to which the session
	// writes a message too large to keep in memory as it arrives, from
	// its first byte; the body it hands to PutMessage is then a section
	// of that file. A Spooler may keep that very file as the stored body
	// instead of copying it. The session closes the file once the
	// transaction ends, after PutMessage; a file PutMessage did not keep
	// is then removed.
	CreateFile(id string) (SpoolFile, error)
}

// SpoolFile is a file a server writes a large message into as it
// arrives, from its first byte, so that the message never needs to be in
// memory (the spool's blob is one): the session appends to it, its
// filters read it back (a Body may be a section of it), and the session
// closes it when the transaction ends.
type SpoolFile interface {
	io.Writer
	io.ReaderAt
	io.Closer
}
