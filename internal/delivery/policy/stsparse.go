package policy

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"postern/internal/dns"
)

// STSMode is the mode of an MTA-STS policy (RFC 8461 §3.2).
type STSMode string

// The modes of RFC 8461 §5.
const (
	STSEnforce STSMode = "enforce"
	STSTesting STSMode = "testing"
	STSNone    STSMode = "none"
)

// maxSTSMaxAge is the largest max_age a policy may give (RFC 8461 §3.2).
const maxSTSMaxAge = 31557600

// STSPolicy is a parsed MTA-STS policy file. Delivery and `postern
// check` both read policies with ParseSTSPolicy and match hosts with
// Match: what check blesses, delivery takes.
type STSPolicy struct {
	// Mode is the policy's mode.
	Mode STSMode
	// MX are the mx patterns, lower case, without a trailing dot:
	// "mx.example.com" or "*.example.com".
	MX []string
	// MaxAge is how long the policy may be cached.
	MaxAge time.Duration
}

// ParseSTSPolicy parses the body of an MTA-STS policy file.
//
// RFC 8461 §3.2: "key: value" lines ended by CRLF or LF; version STSv1,
// mode enforce|testing|none, max_age 0..31557600 seconds, and one or more
// mx patterns (optional when mode is none); unknown keys are ignored.
// A repeated version, mode or max_age makes the policy invalid.
func ParseSTSPolicy(body string) (*STSPolicy, error) {
	p := &STSPolicy{}
	var haveVersion, haveMode, haveMaxAge bool
	for line := range strings.SplitSeq(body, "\n") {
		line = strings.TrimSuffix(line, "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		key, value, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("policy: MTA-STS policy: line without a colon: %q", truncate(line))
		}
		key = strings.TrimSpace(key)
		value = strings.Trim(value, " \t")
		if !validSTSKey(key) {
			return nil, fmt.Errorf("policy: MTA-STS policy: invalid key %q", truncate(key))
		}
		switch key {
		case "version":
			if haveVersion {
				return nil, errors.New("policy: MTA-STS policy: version given twice")
			}
			haveVersion = true
			if value != "STSv1" {
				return nil, fmt.Errorf("policy: MTA-STS policy: unsupported version %q", truncate(value))
			}
		case "mode":
			if haveMode {
				return nil, errors.New("policy: MTA-STS policy: mode given twice")
			}
			haveMode = true
			switch m := STSMode(value); m {
			case STSEnforce, STSTesting, STSNone:
				p.Mode = m
			default:
				return nil, fmt.Errorf("policy: MTA-STS policy: unknown mode %q", truncate(value))
			}
		case "max_age":
			if haveMaxAge {
				return nil, errors.New("policy: MTA-STS policy: max_age given twice")
			}
			haveMaxAge = true
			// RFC 8461 §3.2: max-age-value = 1*10(DIGIT).
			if len(value) == 0 || len(value) > 10 || strings.Trim(value, "0123456789") != "" {
				return nil, fmt.Errorf("policy: MTA-STS policy: invalid max_age %q", truncate(value))
			}
			n, err := strconv.ParseUint(value, 10, 64)
			if err != nil || n > maxSTSMaxAge {
				return nil, fmt.Errorf("policy: MTA-STS policy: max_age %q out of range (0..%d)", truncate(value), maxSTSMaxAge)
			}
			p.MaxAge = time.Duration(n) * time.Second
		case "mx":
			pat := strings.ToLower(strings.TrimSuffix(value, "."))
			if !validMXPattern(pat) {
				return nil, fmt.Errorf("policy: MTA-STS policy: invalid mx pattern %q", truncate(value))
			}
			p.MX = append(p.MX, pat)
		default:
			// RFC 8461 §3.2: other keys are extensions; ignore them.
		}
	}
	switch {
	case !haveVersion:
		return nil, errors.New("policy: MTA-STS policy: no version")
	case !haveMode:
		return nil, errors.New("policy: MTA-STS policy: no mode")
	case !haveMaxAge:
		return nil, errors.New("policy: MTA-STS policy: no max_age")
	case len(p.MX) == 0 && p.Mode != STSNone:
		return nil, errors.New("policy: MTA-STS policy: no mx pattern")
	}
	return p, nil
}

// Match reports whether host (lower case, no trailing dot) matches one of
// the policy's mx patterns. RFC 8461 §4.1: a pattern "*.example.com"
// matches exactly one extra leftmost label ("mx.example.com", not
// "example.com" nor "a.b.example.com").
func (p *STSPolicy) Match(host string) bool {
	for _, pat := range p.MX {
		if suffix, ok := strings.CutPrefix(pat, "*."); ok {
			label, rest, found := strings.Cut(host, ".")
			if found && label != "" && rest == suffix {
				return true
			}
			continue
		}
		if host == pat {
			return true
		}
	}
	return false
}

// validSTSKey reports whether k is a field name of RFC 8461 §3.2:
// 1*32(ALPHA / DIGIT / "_" / "-" / ".").
func validSTSKey(k string) bool {
	if len(k) == 0 || len(k) > 32 {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !isAlnum(c) && c != '_' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

// validMXPattern reports whether pat is a DNS name, optionally with a
// leading "*." wildcard label (RFC 8461 §3.2), in dns.ValidName's syntax.
func validMXPattern(pat string) bool {
	return dns.ValidName(strings.TrimPrefix(pat, "*."))
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// STSRecords returns the MTA-STS records among the TXT records of
// _mta-sts.DOMAIN: those that start with the version field "v=STSv1"
// (RFC 8461 §3.1); the others are discarded.
func STSRecords(txts []string) []string {
	var found []string
	for _, t := range txts {
		if t == "v=STSv1" || strings.HasPrefix(t, "v=STSv1;") || strings.HasPrefix(t, "v=STSv1 ") {
			found = append(found, t)
		}
	}
	return found
}

// ParseSTSRecord returns the id of the MTA-STS TXT records of a domain.
// RFC 8461 §3.1: records that do not start with "v=STSv1" are discarded
// (STSRecords); unless exactly one remains and it is well formed (an id
// of 1 to 32 letters and digits), the domain has no available policy.
func ParseSTSRecord(txts []string) (string, error) {
	found := STSRecords(txts)
	if len(found) != 1 {
		return "", fmt.Errorf("policy: %d MTA-STS TXT records, want 1", len(found))
	}
	id := ""
	for i, field := range strings.Split(found[0], ";") {
		field = strings.Trim(field, " \t")
		if i == 0 {
			if field != "v=STSv1" {
				return "", fmt.Errorf("policy: MTA-STS TXT record: bad version field %q", truncate(field))
			}
			continue
		}
		if field == "" {
			continue
		}
		k, v, ok := strings.Cut(field, "=")
		if !ok {
			return "", fmt.Errorf("policy: MTA-STS TXT record: field without '=': %q", truncate(field))
		}
		if k == "id" {
			if id != "" {
				return "", errors.New("policy: MTA-STS TXT record: id given twice")
			}
			if len(v) == 0 || len(v) > 32 || strings.IndexFunc(v, func(r rune) bool { return r > 0x7f || !isAlnum(byte(r)) }) >= 0 {
				return "", fmt.Errorf("policy: MTA-STS TXT record: invalid id %q", truncate(v))
			}
			id = v
		}
	}
	if id == "" {
		return "", errors.New("policy: MTA-STS TXT record: no id")
	}
	return id, nil
}

// truncate shortens hostile input before it goes into an error or a log.
func truncate(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
