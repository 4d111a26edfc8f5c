package sendmail

import (
	"errors"

	"postern/internal/addrkey"
)

// Flush is what follows sendmail's -q: "" (every deferred message),
// "R" or "S" and a site (the messages with a deferred recipient, or the
// sender, at that domain), "I" and a queue id, or "interval" for a
// daemon's period ("-q1h"), which flushes nothing, as Postfix ignores it
// too.
type Flush string

// ParseFlush parses the rest of a -q option.
func ParseFlush(rest string) (Flush, error) {
	switch {
	case rest == "":
		return "", nil
	case rest[0] == 'R' || rest[0] == 'S' || rest[0] == 'I':
		if len(rest) == 1 {
			return "", errors.New("-q" + rest + " needs a value (as in -qRexample.com)")
		}
		return Flush(rest), nil
	case rest[0] >= '0' && rest[0] <= '9':
		return "interval", nil
	}
	return "", errors.New("unsupported option -q" + rest)
}

// Selects reports whether f retries a queued message: id and from are
// its queue id and sender, held whether an operator holds it, deferred
// its recipients waiting for a retry. It needs a deferred recipient and,
// with a filter, is the one named or has a deferred recipient (R) or its
// sender (S) at the site.
func (f Flush) Selects(id, from string, held bool, deferred []string) bool {
	if len(deferred) == 0 || held || f == "interval" {
		return false
	}
	if f == "" {
		return true
	}
	kind, site := f[0], addrkey.DomainKey(string(f[1:]))
	switch kind {
	case 'I':
		return id == string(f[1:])
	case 'S':
		return addrkey.DomainKey(addrkey.DomainOf(from)) == site
	}
	for _, r := range deferred {
		if addrkey.DomainKey(addrkey.DomainOf(r)) == site {
			return true
		}
	}
	return false
}
