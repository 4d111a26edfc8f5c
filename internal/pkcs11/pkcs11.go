// Package pkcs11 gives Postern private keys that live in a hardware
// security module or another PKCS#11 token: TLS certificate keys and DKIM
// signing keys named by a PKCS#11 URI (RFC 7512) in place of a key file.
// Postern uses them through crypto.Signer and never sees the key.
//
// Tokens opens tokens on demand, logs in with a PIN read from a file,
// keeps one session pool per token for the life of the process, and
// returns each key as a *Key: a crypto.Signer that bounds every
// operation (a timeout and a cap on operations in flight), counts them
// in the metric postern_pkcs11_operations_total, logs failures without
// flooding, and turns a panic of the module into an error, so that a
// token that stops answering fails TLS handshakes and signatures, never
// the process. Errors are *Error values that name the fix: a wrong PIN,
// a token or key not found (with what the module does have), a module
// that does not load.
//
// The token access uses github.com/ThalesGroup/crypto11, which needs
// cgo. A build without cgo (CGO_ENABLED=0, as the static image is
// built) compiles a Tokens whose every key is an *Error of kind
// KindUnsupported saying so; Supported tells which build this is. The
// URI parser and the Key wrapper are plain Go in both builds.
package pkcs11

import (
	"fmt"
	"log/slog"
	"time"
)

// Defaults of Options.
const (
	// DefaultMaxInFlight caps the operations of one token waiting for
	// it at once when Options.MaxInFlight is 0. A token that hangs
	// holds at most this many threads.
	DefaultMaxInFlight = 32
)

// Options configure Tokens.
type Options struct {
	// Module is the PKCS#11 module (a shared library) for URIs without
	// module-path ([pkcs11] module).
	Module string
	// PINFile holds the user PIN for URIs without pin-source ([pkcs11]
	// pin_file).
	PINFile string
	// ReadSecret reads a PIN file and returns the PIN: Postern's one
	// rule for secret files (the first line). Required.
	ReadSecret func(path string) (string, error)
	// Timeout bounds one signature. Required (positive): Postern's
	// configuration resolves its default (pkcs11.timeout), in
	// internal/config.
	Timeout time.Duration
	// MaxInFlight caps the operations in flight per token; 0 means
	// DefaultMaxInFlight.
	MaxInFlight int
	// Logger receives key failures and recoveries; nil discards them.
	Logger *slog.Logger
	// Now is the clock of the log rate limit; nil means time.Now.
	Now func() time.Time
	// Metrics counts the keys' operations (NewMetrics); nil counts into
	// a set registered nowhere.
	Metrics *Metrics
}

// defaults fills the defaults of the options no key sets. It panics on
// a Timeout that is not positive, as time.NewTicker does on its period.
func (o *Options) defaults() {
	if o.Timeout <= 0 {
		panic("pkcs11: Options.Timeout must be positive")
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
}

// ErrorKind says what went wrong with a key, and so what to fix.
type ErrorKind string

// The kinds of Error.
const (
	// KindUnsupported: this build has no PKCS#11 support (no cgo).
	KindUnsupported ErrorKind = "unsupported"
	// KindConfig: the URI or the configuration is wrong (no module, no
	// PIN file, a bad URI).
	KindConfig ErrorKind = "config"
	// KindModule: the module does not load or initialize.
	KindModule ErrorKind = "module"
	// KindToken: no token matches the URI.
	KindToken ErrorKind = "token"
	// KindPIN: the token refused the PIN, or the PIN file is unreadable.
	KindPIN ErrorKind = "pin"
	// KindKey: the token holds no usable key the URI names.
	KindKey ErrorKind = "key"
)

// Error is why a key could not be had, with how to fix it.
type Error struct {
	// Kind is what is wrong.
	Kind ErrorKind
	// URI is the key's URI, in String form ("" when it did not parse).
	URI string
	// Msg says what is wrong.
	Msg string
	// Fix says what to do.
	Fix string
	// Err is the cause, if any.
	Err error
}

// Error returns "pkcs11: URI: MSG: CAUSE".
func (e *Error) Error() string {
	s := "pkcs11: "
	if e.URI != "" {
		s += e.URI + ": "
	}
	s += e.Msg
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// unsupportedMsg is the message of KindUnsupported, also for config checks.
const unsupportedMsg = "PKCS#11 keys are not supported in this build of Postern (built without cgo, as the static image is)"

// unsupportedFix says what to do about KindUnsupported.
const unsupportedFix = "run a build with cgo (the default go build where a C compiler is installed, or the distribution package), or keep the key in a file"

// UnsupportedError returns the error of a build without PKCS#11 for uri.
func UnsupportedError(uri string) *Error {
	return &Error{Kind: KindUnsupported, URI: uri, Msg: unsupportedMsg, Fix: unsupportedFix}
}

// KeyInfo describes a key found in a token, for `postern check` and the
// start-up log.
type KeyInfo struct {
	// URI is the key's URI in String form.
	URI string
	// Module is the module's file.
	Module string
	// Token describes the token: label, manufacturer, model and serial.
	Token string
	// Label and ID are the key's CKA_LABEL and CKA_ID (hexadecimal).
	Label, ID string
	// Algorithm is "ECDSA P-256", "RSA 2048" and so on.
	Algorithm string
}

// String returns a one-line description.
func (i KeyInfo) String() string {
	return fmt.Sprintf("%s: %s key (label %q, id %s) in token %s, module %s", i.URI, i.Algorithm, i.Label, i.ID, i.Token, i.Module)
}
