package mailauth

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"blitiri.com.ar/go/spf"

	"postern/internal/dns"
)

// SPFResult is the outcome of one SPF check (RFC 7208 §2.6).
type SPFResult struct {
	// Result is "none", "neutral", "pass", "fail", "softfail",
	// "temperror" or "permerror".
	Result string
	// Identity is "mailfrom" or "helo" (RFC 7208 §2.3, §2.4).
	Identity string
	// Domain is the domain checked: of the MAIL FROM address, or the
	// HELO name.
	Domain string
	// Sender is what the result is reported for: the MAIL FROM address
	// (postmaster@HELO for the null sender, RFC 7208 §2.4) or the HELO name.
	Sender string
	// Reason says why, for logs; it may be empty.
	Reason string
}

// CheckSPF evaluates SPF (RFC 7208 §4) for a client at ip that said helo
// and gave mailFrom ("" for the null sender) as reverse-path, with the
// limits of §4.6.4 (10 lookups, 2 void lookups). identity is "mailfrom"
// or "helo": for "helo" the HELO name is checked (§2.3); for "mailfrom"
// the MAIL FROM domain, or the HELO name when the sender is null (§2.4).
// A HELO that is not a domain name gives "none".
func CheckSPF(ctx context.Context, r dns.Resolver, ip netip.Addr, helo, mailFrom, identity string) SPFResult {
	helo = strings.TrimSuffix(strings.ToLower(helo), ".")
	res := SPFResult{Identity: identity, Result: "none"}
	sender := mailFrom
	if identity == "helo" || mailFrom == "" {
		sender = "postmaster@" + helo
	}
	res.Sender = sender
	res.Domain = addressDomain(sender)
	if identity == "helo" {
		res.Sender = helo
	}
	if !isDomainName(res.Domain) {
		res.Reason = "no domain to check"
		return res
	}
	out, err := spf.CheckHostWithSender(net.IP(ip.Unmap().AsSlice()), helo, sender,
		spf.WithContext(ctx), spf.WithResolver(spfResolver{r}))
	res.Result = strings.ToLower(string(out))
	if err != nil {
		res.Reason = err.Error()
	}
	return res
}

// isDomainName reports whether s looks like a DNS name with at least two
// labels (not an address literal).
func isDomainName(s string) bool {
	if len(s) == 0 || len(s) > 253 || !strings.Contains(s, ".") || strings.HasPrefix(s, "[") {
		return false
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 {
			return false
		}
	}
	return true
}

// SPFRecords returns the SPF records among the TXT records of a domain:
// those that start with the version "v=spf1" followed by a space or
// nothing (RFC 7208 §4.5, case-insensitive). More than one is an error
// for receivers.
func SPFRecords(txts []string) []string {
	var out []string
	for _, t := range txts {
		if strings.EqualFold(t, "v=spf1") || (len(t) > 7 && strings.EqualFold(t[:7], "v=spf1 ")) {
			out = append(out, t)
		}
	}
	return out
}

// CheckSPFSyntax checks that every term of the SPF record rec (which
// SPFRecords found) is a syntactically valid mechanism or modifier
// (RFC 7208 §4.6.1, §5, §6); macros are not checked. The error names the
// first term that is not.
func CheckSPFSyntax(rec string) error {
	terms := strings.Fields(rec)
	if len(terms) == 0 || !strings.EqualFold(terms[0], "v=spf1") {
		return fmt.Errorf("mailauth: SPF record %q does not start with v=spf1", rec)
	}
	for _, term := range terms[1:] {
		if !spfTerm(term) {
			return fmt.Errorf("mailauth: SPF record %q: %q is not a valid mechanism or modifier", rec, term)
		}
	}
	return nil
}

// spfTerm reports whether term is a syntactically valid SPF mechanism
// or modifier (RFC 7208 §4.6.1, §5, §6), without checking macros.
func spfTerm(term string) bool {
	t := strings.ToLower(strings.TrimLeft(term, "+-~?"))
	if t == "" {
		return false
	}
	if i := strings.IndexByte(t, '='); i > 0 && !strings.ContainsAny(t[:i], ":/") {
		// A modifier, name=value (RFC 7208 §6).
		return strings.Trim(t[:i], "abcdefghijklmnopqrstuvwxyz0123456789-_.") == ""
	}
	name, arg, hasArg := strings.Cut(t, ":")
	if j := strings.IndexByte(name, '/'); j >= 0 && !hasArg {
		name = name[:j]
	}
	switch name {
	case "all":
		return !hasArg
	case "include", "exists":
		return hasArg && arg != ""
	case "a", "mx", "ptr":
		return true
	case "ip4", "ip6":
		if !hasArg {
			return false
		}
		p, err := netip.ParsePrefix(arg)
		if err != nil {
			a, aerr := netip.ParseAddr(arg)
			return aerr == nil && a.Is4() == (name == "ip4")
		}
		return p.Addr().Is4() == (name == "ip4")
	}
	return false
}
