package check

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"postern/internal/config"
	"postern/internal/dns"
)

// srvLookup is what the client checks need of the resolver beyond
// dns.Resolver: dns.Client has it.
type srvLookup interface {
	LookupSRV(ctx context.Context, name string) ([]dns.SRV, dns.Result, error)
}

// clientService is a service mail clients find through an SRV record
// (RFC 6186 §3.1, RFC 8314 §5.1).
type clientService struct {
	srv  string // "_submissions._tcp"
	what string // for messages
	host string // where Postern says it is; "" when not offered
	port int
}

// clientServices returns the services of d's SRV records: submission
// with implicit TLS and with STARTTLS at hostname on the first listener
// of each role, and IMAP at [autoconfig] imap_host when set.
func (c *Checker) clientServices() []clientService {
	out := []clientService{
		{srv: "_submissions._tcp", what: "submission with TLS"},
		{srv: "_submission._tcp", what: "submission with STARTTLS"},
	}
	for _, l := range c.Config.Listeners {
		i := -1
		switch l.Role {
		case config.RoleSubmissions:
			i = 0
		case config.RoleSubmission:
			i = 1
		}
		if i < 0 || out[i].host != "" {
			continue
		}
		if _, p, err := net.SplitHostPort(l.Address); err == nil {
			if n, err := strconv.Atoi(p); err == nil && n > 0 {
				out[i].host, out[i].port = c.Config.Hostname, n
			}
		}
	}
	if a := c.Config.Autoconfig; a.IMAPHost != "" {
		out = append(out, clientService{srv: "_imaps._tcp", what: "IMAP with TLS", host: a.IMAPHost, port: a.IMAPPort})
	}
	return out
}

// checkClientSRV checks the SRV records mail clients look up to find
// the submission and IMAP servers of d (RFC 6186 §3.1, RFC 8314 §5.1):
// each service Postern offers is published, pointing at it. None is a
// WARN (clients then guess or use autoconfig); a record pointing
// elsewhere, or saying "not available" (target "."), is a FAIL. For a
// service not offered, no record or "." is right.
func (c *Checker) checkClientSRV(ctx context.Context, d string) {
	lk, ok := c.Resolver.(srvLookup)
	if !ok {
		return
	}
	for _, s := range c.clientServices() {
		name := s.srv + "." + d
		fix := fmt.Sprintf("%s. IN SRV 0 1 %d %s.", name, s.port, s.host)
		if s.host == "" {
			fix = fmt.Sprintf("%s. IN SRV 0 0 0 .", name)
		}
		recs, _, err := lk.LookupSRV(ctx, name)
		if c.lookupErr("srv", d, name, err) {
			continue
		}
		switch {
		case err != nil && s.host == "":
			c.ok("srv", d, fmt.Sprintf("%s: no record, and Postern offers no %s", name, s.what))
		case err != nil:
			c.warn("srv", d, fmt.Sprintf("no SRV record at %s: mail clients that look for it (RFC 6186) must guess the %s server", name, s.what), fix)
		case s.host == "":
			if slices.ContainsFunc(recs, func(r dns.SRV) bool { return r.Target == c.Config.Hostname }) {
				c.fail("srv", d, fmt.Sprintf("%s points clients at %s, where Postern offers no %s", name, c.Config.Hostname, s.what),
					"say the service is not available: "+fix)
			} else {
				c.ok("srv", d, fmt.Sprintf("%s: %s", name, srvList(recs)))
			}
		case slices.ContainsFunc(recs, func(r dns.SRV) bool { return r.Target == s.host && int(r.Port) == s.port }):
			c.ok("srv", d, fmt.Sprintf("%s: %s", name, srvList(recs)))
		default:
			c.fail("srv", d, fmt.Sprintf("%s says %s, not %s port %d: mail clients that use it do not reach the %s server",
				name, srvList(recs), s.host, s.port, s.what), "replace it with: "+fix)
		}
	}
}

// srvList formats SRV records as they are published.
func srvList(recs []dns.SRV) string {
	var s []string
	for _, r := range recs {
		t := r.Target
		if t == "" {
			t = "." // not available
		}
		s = append(s, fmt.Sprintf("SRV %d %d %d %s", r.Priority, r.Weight, r.Port, t))
	}
	return strings.Join(s, ", ")
}

// checkAutoconfig checks what [autoconfig] needs of d: that
// autoconfig.DOMAIN and autodiscover.DOMAIN have addresses, and that a
// served certificate covers them (clients refuse the answer otherwise).
func (c *Checker) checkAutoconfig(ctx context.Context, d string) {
	if !c.Config.Autoconfig.Enabled {
		return
	}
	for _, name := range config.AutoconfigNames(d) {
		fix := fmt.Sprintf("%s. IN CNAME %s.", name, c.Config.Hostname)
		_, _, err := c.Resolver.LookupIP(ctx, name)
		if c.lookupErr("autoconfig", d, name, err) {
			continue
		}
		if err != nil {
			c.warn("autoconfig", d, fmt.Sprintf("%s has no address: clients cannot fetch their settings there", name), fix)
			continue
		}
		if len(c.leaves) > 0 && !slices.ContainsFunc(c.leaves, func(l *x509.Certificate) bool { return l.VerifyHostname(name) == nil }) {
			fix := "with [acme], leave autoconfig.acme_names on (the default); otherwise add " + name + " to the certificate"
			c.warn("autoconfig", d, fmt.Sprintf("no served certificate covers %s: clients refuse the settings served there", name), fix)
			continue
		}
		c.ok("autoconfig", d, name+" resolves and the certificate covers it")
	}
}

// checkAutoconfigServer checks [autoconfig] as a whole: what clients
// need beyond the submission servers.
func (c *Checker) checkAutoconfigServer() {
	a := c.Config.Autoconfig
	if !a.Enabled {
		return
	}
	if a.IMAPHost == "" {
		c.warn("autoconfig", "", "no imap_host: the settings name no server to read mail from (Thunderbird and Outlook then ask the user; there is no Apple profile)",
			`set [autoconfig] imap_host = "imap.example.com" (your IMAP server)`)
		return
	}
	c.ok("autoconfig", "", fmt.Sprintf("serves on %s: submission at %s, IMAP at %s:%d", a.Address, c.Config.Hostname, a.IMAPHost, a.IMAPPort))
}
