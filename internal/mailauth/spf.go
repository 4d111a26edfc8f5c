package mailauth

import (
	"context"
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
