package mailauth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"postern/internal/dns"
	"postern/internal/smtp"
)

// Signature is the parsed tag list of a DKIM-Signature field (RFC 6376
// §3.5), as far as Authentication-Results and our checks need it.
type Signature struct {
	Version    string
	Algorithm  string // a=
	Domain     string // d=, lower case
	Selector   string // s=
	Identity   string // i=
	Headers    []string
	B          string // b=, whitespace removed
	BodyHash   string // bh=
	Canon      string // c=
	Timestamp  int64  // t=, 0 when absent
	Expiration int64  // x=, 0 when absent
	HasLength  bool   // l= present
}

// ParseSignature parses the value of a DKIM-Signature field (RFC 6376
// §3.2, §3.5): tag=value pairs separated by ";", whitespace (FWS) around
// them ignored. It checks the required tags (v, a, b, bh, d, h, s), that
// v is 1, that h lists From (§5.4), that i is within d (§3.5) and that x
// is after t; it does not check the signature itself.
func ParseSignature(value string) (*Signature, error) {
	tags, err := ParseTagList(value)
	if err != nil {
		return nil, err
	}
	for _, t := range []string{"v", "a", "b", "bh", "d", "h", "s"} {
		if _, ok := tags[t]; !ok {
			return nil, fmt.Errorf("mailauth: DKIM-Signature lacks %s=", t)
		}
	}
	s := &Signature{
		Version:   tags["v"],
		Algorithm: strings.ToLower(tags["a"]),
		Domain:    strings.ToLower(strings.TrimSuffix(tags["d"], ".")),
		Selector:  tags["s"],
		Identity:  tags["i"],
		B:         stripFWS(tags["b"]),
		BodyHash:  stripFWS(tags["bh"]),
		Canon:     tags["c"],
	}
	_, s.HasLength = tags["l"]
	if s.Version != "1" {
		return nil, fmt.Errorf("mailauth: DKIM-Signature version %q", s.Version)
	}
	if s.Domain == "" || s.Selector == "" {
		return nil, errors.New("mailauth: DKIM-Signature with empty d= or s=")
	}
	fromSigned := false
	for _, h := range strings.Split(tags["h"], ":") {
		h = stripFWS(h)
		if h == "" {
			return nil, errors.New("mailauth: DKIM-Signature h= has an empty name")
		}
		s.Headers = append(s.Headers, h)
		fromSigned = fromSigned || strings.EqualFold(h, "From")
	}
	if !fromSigned {
		return nil, errors.New("mailauth: DKIM-Signature does not sign From") // RFC 6376 §5.4
	}
	if s.Identity != "" {
		// RFC 6376 §3.5 i=: its domain must be d= or a subdomain of it.
		d := addressDomain(s.Identity)
		if s.Identity[0] != '@' && !strings.Contains(s.Identity, "@") || d != s.Domain && !strings.HasSuffix(d, "."+s.Domain) {
			return nil, fmt.Errorf("mailauth: DKIM-Signature i=%s is not within d=%s", s.Identity, s.Domain)
		}
	}
	for tag, dst := range map[string]*int64{"t": &s.Timestamp, "x": &s.Expiration} {
		if v, ok := tags[tag]; ok {
			n, err := strconv.ParseInt(stripFWS(v), 10, 64)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("mailauth: DKIM-Signature %s=%q", tag, v)
			}
			*dst = n
		}
	}
	if s.Expiration != 0 && s.Timestamp != 0 && s.Expiration < s.Timestamp {
		return nil, errors.New("mailauth: DKIM-Signature x= before t=") // RFC 6376 §3.5
	}
	return s, nil
}

// ParseTagList parses a tag-list (RFC 6376 §3.2), the syntax of
// DKIM-Signature fields and DKIM key records (and of the records of
// TLS-RPT, RFC 8460 §3): tag=value pairs separated by ";", whitespace
// around each trimmed. A tag name must be ALPHA *ALNUMPUNC; a pair
// without "=" and a duplicate tag are errors; an empty element (a
// trailing ";") is allowed.
func ParseTagList(v string) (map[string]string, error) {
	tags := make(map[string]string)
	for _, spec := range strings.Split(v, ";") {
		if strings.Trim(spec, " \t\r\n") == "" {
			continue
		}
		name, val, ok := strings.Cut(spec, "=")
		if !ok {
			return nil, fmt.Errorf("mailauth: tag without '=': %q", spec)
		}
		name = strings.Trim(name, " \t\r\n")
		if name == "" || !isTagName(name) {
			return nil, fmt.Errorf("mailauth: bad tag name %q", name)
		}
		if _, dup := tags[name]; dup {
			return nil, fmt.Errorf("mailauth: duplicate tag %q", name)
		}
		tags[name] = strings.Trim(val, " \t\r\n")
	}
	return tags, nil
}

// isTagName reports whether s is ALPHA *ALNUMPUNC (RFC 6376 §3.2).
func isTagName(s string) bool {
	for i, c := range []byte(s) {
		alpha := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if i == 0 && !alpha || !alpha && !(c >= '0' && c <= '9') && c != '_' {
			return false
		}
	}
	return true
}

func stripFWS(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, s)
}

// DKIMResult is the outcome of verifying one DKIM signature (RFC 6376
// §6, RFC 8601 §2.7.1).
type DKIMResult struct {
	// Result is "pass", "fail", "neutral", "policy", "temperror" or
	// "permerror".
	Result    string
	Domain    string // d=
	Selector  string // s=
	Algorithm string // a=
	// B is the first 12 characters of b=, to tell signatures apart
	// (RFC 6008).
	B string
	// Reason says why it did not pass, for logs and the header's reason.
	Reason string
}

// VerifyOptions bounds DKIM verification.
type VerifyOptions struct {
	// MaxSignatures is how many signatures are verified (from the top);
	// later ones are ignored. 0 verifies none, as if the message had no
	// signature (Postern's mail_auth.max_dkim_signatures; its default is
	// the configuration's, in internal/config).
	MaxSignatures int
	// Now is the clock for x= (RFC 6376 §3.5); nil means time.Now.
	Now func() time.Time
}

// VerifyDKIM verifies the DKIM signatures of msg (RFC 6376 §6.1), at most
// opts.MaxSignatures of them, fetching keys through r. Every signature
// gets a result, bad ones too (RFC 6376 §6.1: a bad signature is a
// result, not an error). It returns nil when there is no signature.
func VerifyDKIM(ctx context.Context, r dns.Resolver, msg []byte, opts VerifyOptions) []DKIMResult {
	_, end := splitHeader(msg)
	return VerifyDKIMMessage(ctx, r, msg[:end], smtp.BodyBytes(msg[end:]), opts)
}

// VerifyDKIMMessage is VerifyDKIM for a message given as its header
// section and its body, which may be in a file: the body is read once,
// as a stream, whatever the number of signatures.
func VerifyDKIMMessage(ctx context.Context, r dns.Resolver, header []byte, body smtp.Body, opts VerifyOptions) []DKIMResult {
	if opts.MaxSignatures <= 0 {
		return nil
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	fields, _ := splitHeader(header)
	var sigs []string
	for _, f := range fields {
		if strings.EqualFold(f.name, "DKIM-Signature") {
			sigs = append(sigs, f.value())
		}
	}
	if len(sigs) == 0 {
		return nil
	}
	if len(sigs) > opts.MaxSignatures {
		sigs = sigs[:opts.MaxSignatures]
	}
	verifs, err := dkim.VerifyWithOptions(io.MultiReader(bytes.NewReader(header), body.Reader()), &dkim.VerifyOptions{
		LookupTXT:        txtFunc(ctx, r),
		MaxVerifications: opts.MaxSignatures,
	})
	// A message the library cannot read (a header without its end)
	// makes every signature a permerror, not an error.
	unreadable := err != nil && verifs == nil
	out := make([]DKIMResult, len(sigs))
	for i, v := range sigs {
		res := &out[i]
		s, perr := ParseSignature(v)
		if s != nil {
			res.Domain, res.Selector, res.Algorithm = s.Domain, s.Selector, s.Algorithm
			res.B = s.B[:min(12, len(s.B))]
		}
		var verr error
		if i < len(verifs) && verifs[i] != nil {
			verr = verifs[i].Err
			if res.Domain == "" {
				res.Domain = strings.ToLower(verifs[i].Domain)
			}
		} else {
			verr = errors.New("not verified")
		}
		switch {
		case perr != nil:
			res.Result, res.Reason = "permerror", perr.Error()
		case unreadable:
			res.Result, res.Reason = "permerror", err.Error()
		case s.Expiration != 0 && now().Unix() > s.Expiration:
			// RFC 6376 §6.1.1: an expired signature is PERMFAIL.
			res.Result, res.Reason = "permerror", "signature expired"
		case verr == nil:
			res.Result = "pass"
		case dkim.IsTempFail(verr):
			res.Result, res.Reason = "temperror", verr.Error()
		case dkim.IsPermFail(verr):
			res.Result, res.Reason = "permerror", verr.Error()
		case s.HasLength:
			// We ignore signatures that cover only part of the body.
			res.Result, res.Reason = "policy", "l= tag not accepted"
		default:
			res.Result, res.Reason = "fail", verr.Error()
		}
	}
	return out
}
