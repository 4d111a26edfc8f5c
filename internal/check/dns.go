package check

import (
	"context"
	"crypto/subtle"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"postern/internal/delivery/policy"
	"postern/internal/dns"
	"postern/internal/mailauth"
	"postern/internal/smtp"
)

// checkDomain checks the DNS records of one local domain: MX, SPF, the
// DKIM key records, DMARC, MTA-STS and TLS-RPT, and what mail clients
// look up (SRV records, autoconfig names: checkclients.go).
func (c *Checker) checkDomain(ctx context.Context, d string, keys []mailauth.SigningKey) {
	c.checkMX(ctx, d)
	c.checkSPF(ctx, d)
	c.checkDKIM(ctx, d, keys)
	c.checkDMARC(ctx, d)
	c.checkMTASTS(ctx, d)
	c.checkTLSRPT(ctx, d)
	c.checkClientSRV(ctx, d)
	c.checkAutoconfig(ctx, d)
}

// lookupErr turns a failed lookup into a FAIL that says the DNS could
// not answer, or returns false when the records simply do not exist.
func (c *Checker) lookupErr(check, domain, name string, err error) bool {
	if err == nil || dns.IsNotFound(err) {
		return false
	}
	c.fail(check, domain, fmt.Sprintf("cannot look up %s: %v", name, err),
		"check the resolvers of [dns] servers (or /etc/resolv.conf) and the domain's name servers, then run postern check again")
	return true
}

// checkMX: an MX of the domain names this host (RFC 5321 §5.1).
func (c *Checker) checkMX(ctx context.Context, d string) {
	host := c.Config.Hostname
	fix := fmt.Sprintf("%s. IN MX 10 %s.", d, host)
	mxs, _, err := c.Resolver.LookupMX(ctx, d)
	if c.lookupErr("mx", d, d, err) {
		return
	}
	if err != nil {
		c.fail("mx", d, fmt.Sprintf("%s has no MX record: other servers send its mail to its address records, if any", d), fix)
		return
	}
	var names []string
	for _, m := range mxs {
		if m.Host == host {
			c.ok("mx", d, fmt.Sprintf("MX %d %s", m.Pref, host))
			return
		}
		names = append(names, m.Host)
	}
	c.fail("mx", d, fmt.Sprintf("no MX of %s names this host %s (they name %s)", d, host, strings.Join(names, ", ")), fix)
}

// checkSPF: one parsable SPF record, which allows the public addresses.
func (c *Checker) checkSPF(ctx context.Context, d string) {
	fix := fmt.Sprintf(`%s. IN TXT "v=spf1 mx -all"`, d)
	txts, _, err := c.Resolver.LookupTXT(ctx, d)
	if c.lookupErr("spf", d, d, err) {
		return
	}
	recs := mailauth.SPFRecords(txts)
	switch {
	case len(recs) == 0:
		c.fail("spf", d, fmt.Sprintf("%s has no SPF record: receivers cannot tell whether this host may send its mail", d), fix)
		return
	case len(recs) > 1:
		c.fail("spf", d, fmt.Sprintf("%s has %d SPF records; receivers treat that as an error (RFC 7208 §4.5)", d, len(recs)),
			"merge them into one: "+fix)
		return
	}
	if err := mailauth.CheckSPFSyntax(recs[0]); err != nil {
		c.fail("spf", d, strings.TrimPrefix(err.Error(), "mailauth: "), "correct it, for example: "+fix)
		return
	}
	if len(c.Config.Check.PublicAddresses) == 0 {
		c.ok("spf", d, fmt.Sprintf("%q (set check.public_addresses to test it against this host's addresses)", recs[0]))
		return
	}
	for _, ip := range c.Config.Check.PublicAddresses {
		r := mailauth.CheckSPF(ctx, c.Resolver, ip, c.Config.Hostname, "postmaster@"+d, "mailfrom")
		if r.Result != "pass" {
			mech := "ip4:"
			if ip.Is6() {
				mech = "ip6:"
			}
			c.fail("spf", d, fmt.Sprintf("SPF of %s gives %s, not pass, for this host's address %s: %s", d, r.Result, ip, r.Reason),
				fmt.Sprintf(`allow the address, for example: %s. IN TXT "v=spf1 mx %s%s -all"`, d, mech, ip))
			return
		}
	}
	c.ok("spf", d, fmt.Sprintf("%q passes for %s", recs[0], joinAddrs(c.Config.Check.PublicAddresses)))
}

func joinAddrs(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}

// checkDKIM: each key of d in DATA/dkim is published, with the same
// public key (RFC 6376 §3.6.1).
func (c *Checker) checkDKIM(ctx context.Context, d string, keys []mailauth.SigningKey) {
	n := 0
	for _, k := range keys {
		if k.Domain != d {
			continue
		}
		n++
		want, err := mailauth.KeyRecord(k.Key)
		if err != nil {
			c.fail("dkim", d, fmt.Sprintf("key %s: %v", k.Selector, err), "replace the key: postern dkim keygen "+d)
			continue
		}
		fix := mailauth.ZoneRecord(d, k.Selector, want)
		name := k.Selector + "._domainkey." + d
		txts, _, err := c.Resolver.LookupTXT(ctx, name)
		if c.lookupErr("dkim", d, name, err) {
			continue
		}
		if err != nil || len(txts) == 0 {
			c.fail("dkim", d, fmt.Sprintf("no DKIM record at %s: receivers cannot verify mail signed with selector %s", name, k.Selector), fix)
			continue
		}
		wantP, _ := mailauth.RecordKey(want)
		match := false
		for _, t := range txts {
			if p, err := mailauth.RecordKey(t); err == nil && subtle.ConstantTimeCompare([]byte(p), []byte(wantP)) == 1 {
				match = true
			}
		}
		if !match {
			c.fail("dkim", d, fmt.Sprintf("the record at %s does not publish the key in %s (its p= differs)", name,
				mailauth.KeyPath(c.Config.DataDir, d, k.Selector, k.Algorithm())), "replace the record with: "+fix)
			continue
		}
		c.ok("dkim", d, fmt.Sprintf("selector %s (%s) published", k.Selector, k.Algorithm()))
	}
	if n == 0 && c.Config.MailAuth.Sign {
		c.warn("dkim", d, fmt.Sprintf("no DKIM key for %s: its mail leaves unsigned", d),
			fmt.Sprintf("postern dkim keygen %s, then publish the record it prints", d))
	}
}

// checkDMARC: a DMARC record at _dmarc.DOMAIN (RFC 7489 §6.1).
func (c *Checker) checkDMARC(ctx context.Context, d string) {
	fix := fmt.Sprintf(`_dmarc.%s. IN TXT "v=DMARC1; p=quarantine; rua=mailto:%s"`, d, c.Config.Postmaster)
	rec, at, err := mailauth.LookupDMARC(ctx, c.Resolver, d)
	if err != nil {
		c.lookupErr("dmarc", d, "_dmarc."+d, err)
		return
	}
	if rec == nil {
		c.fail("dmarc", d, fmt.Sprintf("no valid DMARC record at _dmarc.%s: receivers have no policy for mail forged in its name", d), fix)
		return
	}
	where := ""
	if at != d {
		where = fmt.Sprintf(" (of the organizational domain %s)", at)
	}
	if rec.Policy == mailauth.PolicyNone {
		c.warn("dmarc", d, fmt.Sprintf("DMARC policy is p=none%s: forged mail is only reported", where),
			"once reports show your mail passes, raise it: "+fix)
		return
	}
	c.ok("dmarc", d, fmt.Sprintf("p=%s%s", rec.Policy, where))
}

// stsPolicyFile is the policy file to publish for d (RFC 8461 §3.2).
func (c *Checker) stsPolicyFile() string {
	return fmt.Sprintf("version: STSv1\nmode: enforce\nmx: %s\nmax_age: 604800\n", c.Config.Hostname)
}

// checkMTASTS: the _mta-sts TXT record and the policy it announces,
// fetched over HTTPS with a verified certificate (RFC 8461 §3.1, §3.3).
// No record at all is a WARN: MTA-STS is optional.
func (c *Checker) checkMTASTS(ctx context.Context, d string) {
	id := c.Now().UTC().Format("20060102") + "01"
	policyURL := "https://mta-sts." + d + "/.well-known/mta-sts.txt"
	fix := fmt.Sprintf("%s\n  _mta-sts.%s. IN TXT \"v=STSv1; id=%s\"\n  and serve at %s (Content-Type text/plain, a certificate valid for mta-sts.%s):\n%s",
		"publish:", d, id, policyURL, d, indent(c.stsPolicyFile(), "    "))
	name := "_mta-sts." + d
	txts, _, err := c.Resolver.LookupTXT(ctx, name)
	if c.lookupErr("mta-sts", d, name, err) {
		return
	}
	// The record and the policy are read as delivery reads them
	// (internal/delivery/policy): what check blesses, delivery takes.
	recs := policy.STSRecords(txts)
	if len(recs) == 0 {
		c.warn("mta-sts", d, fmt.Sprintf("no MTA-STS record at %s: senders cannot require TLS to %s", name, d), fix)
		return
	}
	if len(recs) > 1 {
		c.fail("mta-sts", d, fmt.Sprintf("%d MTA-STS records at %s; senders ignore them all (RFC 8461 §3.1)", len(recs), name), "keep one")
		return
	}
	if _, err := policy.ParseSTSRecord(recs); err != nil {
		c.fail("mta-sts", d, fmt.Sprintf("MTA-STS record %q: %s; senders see no policy (the id= must be 1 to 32 letters and digits)", recs[0], strings.TrimPrefix(err.Error(), "policy: ")),
			fmt.Sprintf(`_mta-sts.%s. IN TXT "v=STSv1; id=%s"`, d, id))
		return
	}
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	pol, err := policy.FetchSTSPolicy(fctx, c.HTTP, d)
	cancel()
	if err != nil {
		c.fail("mta-sts", d, fmt.Sprintf("policy %s: %v; senders that saw a policy before keep their cached copy, others see none", policyURL, err),
			fmt.Sprintf("serve at %s (Content-Type text/plain, a certificate valid for mta-sts.%s):\n%s", policyURL, d, indent(c.stsPolicyFile(), "    ")))
		return
	}
	mxs := strings.Join(pol.MX, ", ")
	if !pol.Match(smtp.LowerASCII(c.Config.Hostname)) {
		c.fail("mta-sts", d, fmt.Sprintf("policy %s lists mx %s but not this host %s: senders in enforce mode refuse to deliver here",
			policyURL, mxs, c.Config.Hostname),
			fmt.Sprintf("add the line \"mx: %s\" to the policy and change the id= of _mta-sts.%s", c.Config.Hostname, d))
		return
	}
	if pol.Mode != policy.STSEnforce {
		c.warn("mta-sts", d, fmt.Sprintf("policy mode is %s: senders do not require TLS yet", pol.Mode),
			fmt.Sprintf("once TLS-RPT reports are clean, set \"mode: enforce\" and change the id= of _mta-sts.%s", d))
		return
	}
	c.ok("mta-sts", d, fmt.Sprintf("policy mode enforce, mx %s", mxs))
}

// checkTLSRPT: a TLS-RPT record at _smtp._tls.DOMAIN (RFC 8460 §3).
// None is a WARN: TLS-RPT is optional.
func (c *Checker) checkTLSRPT(ctx context.Context, d string) {
	name := "_smtp._tls." + d
	fix := fmt.Sprintf(`%s. IN TXT "v=TLSRPTv1; rua=mailto:%s"`, name, c.Config.Postmaster)
	txts, _, err := c.Resolver.LookupTXT(ctx, name)
	if c.lookupErr("tls-rpt", d, name, err) {
		return
	}
	var recs []string
	for _, t := range txts {
		if strings.HasPrefix(t, "v=TLSRPTv1") {
			recs = append(recs, t)
		}
	}
	switch {
	case len(recs) == 0:
		c.warn("tls-rpt", d, fmt.Sprintf("no TLS-RPT record at %s: nobody tells you when senders fail TLS to %s", name, d), fix)
	case len(recs) > 1:
		c.fail("tls-rpt", d, fmt.Sprintf("%d TLS-RPT records at %s; senders ignore them all (RFC 8460 §3)", len(recs), name), "keep one: "+fix)
	default:
		tg, _ := mailauth.ParseTagList(recs[0]) // RFC 8460 §3: a tag-list as DKIM's
		rua := tg["rua"]
		if rua == "" || !(strings.HasPrefix(rua, "mailto:") || strings.HasPrefix(rua, "https:")) {
			c.fail("tls-rpt", d, fmt.Sprintf("TLS-RPT record %q has no rua=mailto: or rua=https: address", recs[0]), fix)
			return
		}
		c.ok("tls-rpt", d, "reports to "+rua)
	}
}

// checkHost checks the host name's addresses and, for each public
// address, its PTR record, forward-confirmed (RFC 8601 §3 "iprev"; many
// receivers refuse mail from an address without one).
func (c *Checker) checkHost(ctx context.Context) {
	host := c.Config.Hostname
	addrs, _, err := c.Resolver.LookupIP(ctx, host)
	if c.lookupErr("address", host, host, err) {
		return
	}
	if err != nil {
		fix := fmt.Sprintf("%s. IN A <this host's IPv4 address>", host)
		if len(c.Config.Check.PublicAddresses) > 0 {
			fix = addrRecords(host, c.Config.Check.PublicAddresses)
		}
		c.fail("address", host, fmt.Sprintf("%s has no A or AAAA record: other servers cannot reach it", host), fix)
	} else {
		missing := slices.DeleteFunc(slices.Clone(c.Config.Check.PublicAddresses), func(a netip.Addr) bool { return slices.Contains(addrs, a) })
		if len(missing) > 0 {
			c.fail("address", host, fmt.Sprintf("%s resolves to %s, not to check.public_addresses %s", host, joinAddrs(addrs), joinAddrs(missing)),
				addrRecords(host, missing))
		} else {
			c.ok("address", host, fmt.Sprintf("%s resolves to %s", host, joinAddrs(addrs)))
		}
	}
	if len(c.Config.Check.PublicAddresses) == 0 {
		c.warn("ptr", host, "no public address configured: PTR records and SPF are not checked against this host's addresses",
			`set [check] public_addresses = ["IP", ...] to this host's public addresses`)
		return
	}
	for _, ip := range c.Config.Check.PublicAddresses {
		fix := fmt.Sprintf("ask whoever runs the address (your hosting provider) to publish %s IN PTR %s.", reverseName(ip), host)
		names, _, err := c.Resolver.LookupPTR(ctx, ip)
		if c.lookupErr("ptr", host, reverseName(ip), err) {
			continue
		}
		if err != nil {
			c.fail("ptr", host, fmt.Sprintf("%s has no PTR record: many receivers refuse its mail", ip), fix)
			continue
		}
		if !slices.Contains(names, host) {
			c.fail("ptr", host, fmt.Sprintf("PTR of %s is %s, not %s", ip, strings.Join(names, ", "), host), fix)
			continue
		}
		if !slices.Contains(addrs, ip) {
			c.fail("ptr", host, fmt.Sprintf("PTR of %s is %s, but %s does not resolve back to %s", ip, host, host, ip), addrRecords(host, []netip.Addr{ip}))
			continue
		}
		c.ok("ptr", host, fmt.Sprintf("%s -> %s -> %s", ip, host, ip))
	}
}

func addrRecords(host string, as []netip.Addr) string {
	var lines []string
	for _, a := range as {
		t := "A"
		if a.Is6() {
			t = "AAAA"
		}
		lines = append(lines, fmt.Sprintf("%s. IN %s %s", host, t, a))
	}
	return strings.Join(lines, "\n")
}

// reverseName returns the PTR owner name of ip (RFC 1035 §3.5, RFC 3596 §2.5).
func reverseName(ip netip.Addr) string {
	if ip.Is4() {
		b := ip.As4()
		return fmt.Sprintf("%d.%d.%d.%d.in-addr.arpa.", b[3], b[2], b[1], b[0])
	}
	b := ip.As16()
	var sb strings.Builder
	for i := 15; i >= 0; i-- {
		fmt.Fprintf(&sb, "%x.%x.", b[i]&0xf, b[i]>>4)
	}
	return sb.String() + "ip6.arpa."
}

func indent(s, pre string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = pre + l
	}
	return strings.Join(lines, "\n")
}
