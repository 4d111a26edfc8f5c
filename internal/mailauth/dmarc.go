package mailauth

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/net/publicsuffix"

	"postern/internal/dns"
)

// Policy is a DMARC policy (RFC 7489 §6.3 p=, sp=).
type Policy string

// The DMARC policies.
const (
	PolicyNone       Policy = "none"
	PolicyQuarantine Policy = "quarantine"
	PolicyReject     Policy = "reject"
)

// DMARCRecord is a parsed DMARC policy record (RFC 7489 §6.3).
type DMARCRecord struct {
	Policy          Policy // p=
	SubdomainPolicy Policy // sp=; "" when absent (then p= applies)
	StrictDKIM      bool   // adkim=s
	StrictSPF       bool   // aspf=s
	Percent         int    // pct=, 0 to 100; 100 when absent or invalid
	RUA, RUF        []string
}

// ErrNotDMARC is returned (wrapped) by ParseDMARC for a TXT record that is
// not a DMARC record at all (it does not start with v=DMARC1), as opposed
// to a DMARC record with errors.
var ErrNotDMARC = errors.New("not a DMARC record")

// The record parser is ours, not emersion/go-msgauth/dmarc's Parse
// (v0.7.0, already in the module graph): run on TestParseDMARC's
// records it fails 6 of 14. It refuses the whole record for an invalid
// optional value (pct=200, adkim=x), so a domain's p=reject stops
// applying; it ignores §6.6.3 step 6 (no valid p= but a rua= URI: act
// as p=none); it takes "p=None" as invalid although ABNF strings are
// case-insensitive; and it accepts a record that does not start with
// v=DMARC1. Its Lookup takes the first record where §6.6.3 step 5 wants
// none when there are several; the tree walk (LookupDMARC) is ours in
// any case.

// ParseDMARC parses a DMARC record (RFC 7489 §6.3, §6.4). The record must
// start with "v=DMARC1" (§6.6.3 step 4, else ErrNotDMARC). Following
// §6.6.3 step 6, a missing or invalid p= (or an invalid sp=) is an error
// unless rua= names a URI, when the record is taken as p=none. Other
// invalid values take their defaults (adkim=r, aspf=r, pct=100), and
// unknown tags are ignored (§6.3).
func ParseDMARC(txt string) (*DMARCRecord, error) {
	parts := strings.Split(txt, ";")
	k, v, _ := strings.Cut(parts[0], "=")
	if strings.TrimSpace(k) != "v" || strings.TrimSpace(v) != "DMARC1" {
		return nil, fmt.Errorf("mailauth: DMARC: %w", ErrNotDMARC)
	}
	rec := &DMARCRecord{Percent: 100}
	var pOK, spOK = false, true
	seen := map[string]bool{}
	for _, part := range parts[1:] {
		if strings.TrimSpace(part) == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		k, v = strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(v)
		if !ok || seen[k] {
			continue
		}
		seen[k] = true
		switch k {
		case "p":
			rec.Policy, pOK = parsePolicy(v)
		case "sp":
			rec.SubdomainPolicy, spOK = parsePolicy(v)
		case "adkim":
			rec.StrictDKIM = strings.EqualFold(v, "s")
		case "aspf":
			rec.StrictSPF = strings.EqualFold(v, "s")
		case "pct":
			if n, err := strconv.Atoi(v); err == nil && n >= 0 && n <= 100 {
				rec.Percent = n
			}
		case "rua":
			rec.RUA = uriList(v)
		case "ruf":
			rec.RUF = uriList(v)
		}
	}
	if !pOK || !spOK {
		if len(rec.RUA) == 0 {
			return nil, errors.New("mailauth: DMARC: missing or invalid p= or sp=")
		}
		rec.Policy, rec.SubdomainPolicy = PolicyNone, ""
	}
	return rec, nil
}

func parsePolicy(v string) (Policy, bool) {
	switch p := Policy(strings.ToLower(v)); p {
	case PolicyNone, PolicyQuarantine, PolicyReject:
		return p, true
	}
	return "", false
}

// uriList returns the URIs of a rua=/ruf= value that look like URIs
// (RFC 7489 §6.4: scheme ":" ...; the "!size" suffix is kept).
func uriList(v string) []string {
	var out []string
	for _, u := range strings.Split(v, ",") {
		u = strings.TrimSpace(u)
		if i := strings.IndexByte(u, ':'); i > 0 && i < len(u)-1 {
			out = append(out, u)
		}
	}
	return out
}

// OrgDomain returns the organizational domain of domain (RFC 7489 §3.2):
// the public suffix plus one label, by the Public Suffix List; the domain
// itself when it is a public suffix or has no known suffix.
func OrgDomain(domain string) string {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	org, err := publicsuffix.EffectiveTLDPlusOne(domain)
	if err != nil {
		return domain
	}
	return org
}

// Aligned reports whether identifier domain id aligns with the From
// domain from (RFC 7489 §3.1): equal in strict mode, with the same
// organizational domain in relaxed mode.
func Aligned(from, id string, strict bool) bool {
	from = strings.ToLower(strings.TrimSuffix(from, "."))
	id = strings.ToLower(strings.TrimSuffix(id, "."))
	if from == "" || id == "" {
		return false
	}
	if strict {
		return from == id
	}
	return OrgDomain(from) == OrgDomain(id)
}

// LookupDMARC finds the DMARC record for the From domain (RFC 7489
// §6.6.3): at _dmarc.DOMAIN, else at _dmarc.ORGDOMAIN. It returns the
// record and the domain it was found at; nil and "" when there is none
// (no record, several records, or an invalid one); an error wrapping
// dns.ErrTemporary when the DNS failed.
func LookupDMARC(ctx context.Context, r dns.Resolver, domain string) (*DMARCRecord, string, error) {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	rec, err := lookupDMARCAt(ctx, r, domain)
	if rec != nil || err != nil {
		return rec, domain, err
	}
	if org := OrgDomain(domain); org != domain {
		rec, err := lookupDMARCAt(ctx, r, org)
		if rec != nil || err != nil {
			return rec, org, err
		}
	}
	return nil, "", nil
}

func lookupDMARCAt(ctx context.Context, r dns.Resolver, domain string) (*DMARCRecord, error) {
	txts, _, err := r.LookupTXT(ctx, "_dmarc."+domain)
	if dns.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("mailauth: DMARC lookup for %s: %w", domain, err)
	}
	var rec *DMARCRecord
	n := 0
	for _, t := range txts {
		r, err := ParseDMARC(t)
		if errors.Is(err, ErrNotDMARC) {
			continue
		}
		n++
		rec = r // nil when invalid
	}
	if n != 1 {
		return nil, nil // RFC 7489 §6.6.3 step 5: none, or more than one
	}
	return rec, nil
}
