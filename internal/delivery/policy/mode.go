package policy

import (
	"errors"
	"fmt"
	"strings"
)

// String returns the configuration name of m: "none", "encrypt" or
// "verify".
func (m Mode) String() string {
	switch m {
	case Opportunistic:
		return "none"
	case Encrypt:
		return "encrypt"
	case Verify:
		return "verify"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// ParseMode parses a configured minimum: "none" (Opportunistic),
// "encrypt" (Encrypt) or "verify" (Verify), in any case.
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "none":
		return Opportunistic, nil
	case "encrypt":
		return Encrypt, nil
	case "verify":
		return Verify, nil
	}
	return 0, fmt.Errorf("policy: unknown TLS mode %q (want none, encrypt or verify)", s)
}

// permanentError marks an error from Plan that retrying cannot fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

func permanent(err error) error { return &permanentError{err} }

// IsPermanent reports whether an error returned by Plan is a permanent
// failure, to be bounced at once: a null MX (ErrNullMX), a domain that
// does not exist or has no MX and no address (ErrNoHosts with
// dns.ErrNXDomain or dns.ErrNoData), an invalid domain, or REQUIRETLS that
// the domain cannot meet (ErrRequireTLS). Every other error, including
// every refusal by an MTA-STS policy and every DNS or HTTPS failure, is
// temporary: the queue retries later.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}
