package smtpd

import (
	"context"
	"crypto/tls"
	"net/netip"
	"time"

	"postern/internal/admission"
	"postern/internal/sasl"
	"postern/internal/smtp"
)

// Spooler stores accepted messages (spool.Spool is one), as
// smtp.Spooler says.
type Spooler = smtp.Spooler

// Directory answers the session's questions about addresses. All
// addresses are "local@domain" with the domain's ASCII letters
// lower-cased (IDNA A-label or U-label as given; the session has refused
// a domain that is no valid IDNA2008 name) and the local part as the
// client sent it. The Directory compares them by their addrkey keys, not
// with Unicode case folding.
type Directory interface {
	// IsLocalDomain reports whether mail for domain is delivered here.
	IsLocalDomain(domain string) bool
	// RecipientExists reports whether addr, in a local domain, names a
	// user or an alias. "postmaster@DOMAIN" for a local domain must exist
	// (RFC 5321 §4.5.1) when its mail reaches someone; when it reaches
	// nobody, it is refused like any unknown user rather than bounced
	// later.
	RecipientExists(ctx context.Context, addr string) (bool, error)
	// MaySendAs reports whether the authenticated user may use addr as
	// envelope sender or in the From header.
	MaySendAs(ctx context.Context, user, addr string) (bool, error)
}

// Authenticator starts SASL exchanges for a session that may authenticate.
type Authenticator interface {
	// Mechanisms lists the SASL mechanisms to advertise on a session in
	// the given TLS state, in order of preference. The session offers
	// AUTH only on TLS sessions, and only these.
	Mechanisms(cs *tls.ConnectionState) []string
	// Start begins an exchange with mechanism mech (upper case) for a
	// session in the given TLS state; ok is false when mech is not offered.
	Start(ctx context.Context, mech string, cs *tls.ConnectionState) (s sasl.Server, ok bool)
}

// Filter inspects a message at the end of DATA, after the session has
// read it, checked and repaired its header and prepended Received, and
// before it is spooled. It runs for every role: on mx it authenticates
// the message (SPF, DKIM, DMARC), on submission it signs it (DKIM).
//
// msg is the message as it would be spooled, with CRLF line endings: its
// header section (bounded by Limits.MaxHeaderSize) in memory, its body
// in memory or in a file, up to the message size limit: read the body
// as a stream (msg.Body.Reader), never whole into memory. The Filter
// must not modify or retain msg. An error is a local failure: the
// session answers 451 4.3.0 and spools nothing.
type Filter interface {
	Filter(ctx context.Context, env *smtp.Envelope, msg *smtp.Message) (FilterResult, error)
}

// FilterResult is what a Filter decided about one message.
type FilterResult struct {
	// Reject, when non-nil, refuses the message with this reply at the
	// end of DATA (for example 550 5.7.1 for a DMARC p=reject failure);
	// nothing is spooled.
	Reject *smtp.Error
	// Header, when non-nil, replaces the header section of the message
	// (for example with fields removed); the body stays. It must keep
	// the Received field the session put on top, and end with the empty
	// line that ends the section, as the original did.
	Header []byte
	// Prepend holds complete header fields, each ending in CRLF, to put
	// on top of the message (of Header when set).
	Prepend []byte
}

// Admitter is the admission gate (admission.Gate has this method). The
// session asks it first, in its own goroutine, before any TLS byte and
// before the greeting. A refused client gets 421 4.7.0 and the close on
// mx and submission, and only the close, without a handshake, on
// submissions. When Admit fails, the session follows the Decision it
// returns (a gate fails open) and logs the error. The session calls the
// Decision's Release when it ends.
type Admitter interface {
	Admit(ctx context.Context, listener string, remote netip.Addr, now time.Time) (admission.Decision, error)
}

// AuthGuard is the auth-abuse guard (admission.Engine has these
// methods). Sessions with a verified TLS client certificate are not
// refused by it and their failures are not counted.
type AuthGuard interface {
	// BeforeAuth is asked when AUTH starts, with username "" (a refusal
	// means the client is banned: the session says 421 4.7.0 and
	// closes), and, for mechanisms whose client names the user before
	// proving it (sasl.Guarded), with the username claimed, before the
	// credentials are checked. A refused attempt fails unchecked, with
	// 535 5.7.8 (421 4.7.0 when banned); a failure, refused or not, is
	// answered no sooner than the verdict's Delay after the question.
	BeforeAuth(ctx context.Context, remote netip.Addr, username string, now time.Time) admission.AuthVerdict
	// AuthResult is told each outcome: OK for a login that stands, not
	// OK for wrong credentials or a refused attempt. It returns the delay
	// to wait before answering a failure (it replaces
	// Limits.AuthFailDelay) and whether the client is banned now: the
	// session then says 421 4.7.0 instead of 535 and closes.
	AuthResult(ctx context.Context, o admission.AuthOutcome) (delay time.Duration, banned bool)
}

// SendLimiter limits what authenticated users send (admission.Limiter
// has these methods).
type SendLimiter interface {
	// BeginSession is called when AUTH succeeds. An error refuses the
	// login with it; otherwise release is called when the session ends.
	BeginSession(ctx context.Context, user string) (release func(), err *smtp.Error)
	// CheckMessage is called at DATA, before 354, with the number of
	// recipients. A verdict with Over set refuses the message with it,
	// unless Hold is set too: then the message is taken, spooled with
	// smtp.Envelope.Hold, and answered 250 "(held for review: send limit)".
	CheckMessage(ctx context.Context, user string, rcpts int, now time.Time) admission.MessageVerdict
}
