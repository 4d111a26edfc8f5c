// Package smtpd implements Postern's SMTP listeners and the session state
// machine for its three roles (mx, submission, submissions). It hands
// accepted mail to a Spooler and asks a Directory and an Authenticator;
// it defines those interfaces and knows nothing of their implementations.
package smtpd

// THIS FILE IS A CONTRACT STUB: the helper that owns internal/smtpd
// replaces it with the real server (keeping these exported names and
// contracts; adding fields is fine).

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"time"
)

// Role is what a listener is for.
type Role int

// The three listener roles.
const (
	RoleMX          Role = iota // port 25: STARTTLS offered, no AUTH, local recipients only
	RoleSubmission              // port 587: STARTTLS, AUTH only after it, MAIL needs AUTH
	RoleSubmissions             // port 465: TLS from the first byte, MAIL needs AUTH
)

// Limits bounds a session. Zero fields take the defaults named.
type Limits struct {
	MaxMessageSize int64         // default 36700160 (35 MiB); advertised in SIZE
	MaxRecipients  int           // default 100 (RFC 5321 §4.5.3.1.8); more get 452 4.5.3
	MaxErrors      int           // default 10; then 421 and close
	MaxCommandLine int           // default 512 (RFC 5321 §4.5.3.1.4)
	MaxTextLine    int           // default 1000 (RFC 5321 §4.5.3.1.6)
	CommandTimeout time.Duration // default 5m (RFC 5321 §4.5.3.2.7)
	DataTimeout    time.Duration // per read in DATA, default 3m (§4.5.3.2.5)
	AuthFailDelay  time.Duration // before 535, default 1s; negative means none
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("smtpd: server closed")

// Server serves SMTP sessions on one listener.
type Server struct {
	Name      string      // listener name, for logs and metrics
	Role      Role        // what the listener is for
	Hostname  string      // used in the greeting, EHLO reply and Received
	TLSConfig *tls.Config // required: STARTTLS or implicit TLS
	Limits    Limits
	Directory Directory
	Auth      Authenticator // required for submission roles; ignored on mx
	Spool     Spooler
	Logger    *slog.Logger     // nil: slog.Default()
	Now       func() time.Time // nil: time.Now
}

// Serve accepts connections on l and serves each in its own goroutine
// until Shutdown; it then returns ErrServerClosed.
func (s *Server) Serve(l net.Listener) error { panic("unimplemented") }

// Shutdown stops accepting, lets sessions finish the transaction in hand,
// and when ctx ends closes the rest (after 421 4.3.2). It returns ctx.Err()
// when sessions had to be cut.
func (s *Server) Shutdown(ctx context.Context) error { panic("unimplemented") }
