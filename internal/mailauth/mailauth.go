// Package mailauth implements mail authentication for Postern: DKIM
// signing (RFC 6376, RFC 8463) of submitted mail, and for mail received on
// port 25, SPF (RFC 7208), DKIM verification, DMARC (RFC 7489) and the
// Authentication-Results header field (RFC 8601).
//
// DKIM verification and SPF evaluation use emersion/go-msgauth and
// blitiri.com.ar/go/spf through adapters to Postern's dns.Resolver; DKIM
// signing, the DMARC record parser and policy, and Authentication-Results
// are written here (see the package's tests for why). Every DNS lookup goes
// through the injected Resolver and every clock reading through an
// injected function.
package mailauth

import (
	"bytes"
	"fmt"
	"strings"

	"postern/internal/smtp"
)

// field is one header field of a message: its name and its raw bytes,
// continuation lines and final CRLF included.
type field struct {
	name string
	raw  []byte
}

// splitHeader returns the header fields of msg, in order, and the offset
// of the body (just after the empty line; len(msg) when there is none).
// Lines end in CRLF; a line that is neither a field nor a continuation is
// kept as a field without a name, so that the fields concatenated give
// back the header section.
func splitHeader(msg []byte) (fields []field, body int) {
	i := 0
	for i < len(msg) {
		end := bytes.IndexByte(msg[i:], '\n')
		if end < 0 {
			end = len(msg)
		} else {
			end += i + 1
		}
		line := msg[i:end]
		if bytes.Equal(line, []byte("\r\n")) || bytes.Equal(line, []byte("\n")) {
			return fields, end
		}
		if (line[0] == ' ' || line[0] == '\t') && len(fields) > 0 {
			f := &fields[len(fields)-1]
			f.raw = msg[i-len(f.raw) : end]
		} else {
			name := ""
			if c := bytes.IndexByte(line, ':'); c > 0 {
				name = strings.TrimRight(string(line[:c]), " \t")
			}
			fields = append(fields, field{name: name, raw: line})
		}
		i = end
	}
	return fields, len(msg)
}

// value returns the field's value unfolded, without the name and colon,
// trimmed of surrounding whitespace.
func (f field) value() string {
	v := f.raw
	if c := bytes.IndexByte(v, ':'); c >= 0 {
		v = v[c+1:]
	}
	s := strings.ReplaceAll(string(v), "\r\n", "")
	s = strings.ReplaceAll(s, "\n", "")
	return strings.Trim(s, " \t")
}

// fieldValues returns the unfolded values of the fields named name.
func fieldValues(fields []field, name string) []string {
	var out []string
	for _, f := range fields {
		if strings.EqualFold(f.name, name) {
			out = append(out, f.value())
		}
	}
	return out
}

// addressDomain returns the lower-cased domain of an addr-spec, "" when it
// has none.
func addressDomain(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return ""
	}
	return strings.ToLower(strings.TrimSuffix(addr[i+1:], "."))
}

// fromDomains returns the distinct domains of the addresses in the From
// fields of a header, read as ParseFrom reads them. A field that
// ParseFrom finds ambiguous contributes no domain.
func fromDomains(fields []field) (domains []string) {
	for _, v := range fieldValues(fields, "From") {
		f, err := ParseFrom(v)
		if err != nil {
			continue
		}
		for _, m := range f.Entries {
			if m.Domain != "" && !contains(domains, m.Domain) {
				domains = append(domains, m.Domain)
			}
		}
	}
	return domains
}

// authorDomain returns the domain of the author of a message: the one
// address of its one From field, as a mail client shows it (ParseFrom).
// Otherwise it returns the refusal, which says why: RFC 5322 §3.6 asks
// for exactly one From field, RFC 7489 §6.6.1 lets a receiver refuse a
// message whose From field names no single domain.
func authorDomain(fields []field) (string, *smtp.Error) {
	refuse := func(msg, reason string) (string, *smtp.Error) {
		return "", &smtp.Error{Code: 550, Enhanced: "5.7.1", Message: msg, Reason: "mailauth: " + reason}
	}
	values := fieldValues(fields, "From")
	switch len(values) {
	case 0:
		return refuse("Message must have exactly one From header field; it has none", "no From field")
	case 1:
	default:
		return refuse(fmt.Sprintf("Message must have exactly one From header field; it has %d", len(values)),
			fmt.Sprintf("%d From fields", len(values)))
	}
	f, err := ParseFrom(values[0])
	switch {
	case err != nil:
		return refuse(asciiOnly(err.Error()), "From: "+err.Error())
	case len(f.Entries) > 1:
		return refuse(fmt.Sprintf("From header field must hold exactly one address; it holds %d", len(f.Entries)),
			fmt.Sprintf("From: %d entries", len(f.Entries)))
	case len(f.Entries) == 0 || f.Entries[0].Domain == "":
		return refuse("From header field has no address with a domain", "From: no domain")
	}
	return f.Entries[0].Domain, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
