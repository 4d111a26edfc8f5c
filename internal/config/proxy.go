package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// MaxGreetDelay is the longest listener.greet_delay accepted: clients
// wait 5 minutes for the greeting (RFC 5321 §4.5.3.2.1), and a delay
// near that loses mail from patient but honest servers.
const MaxGreetDelay = time.Minute

// Proxy is the [proxy] table: the load balancers that may tell Postern,
// with a PROXY protocol header, who the client is.
type Proxy struct {
	// Trusted are the load balancers' addresses, masked. On a listener
	// with ProxyProtocol, a connection from one of them must start with
	// a header; from anywhere else a header is refused.
	Trusted []netip.Prefix
}

// DefaultDNSBLThreshold is a listener's dnsbl_threshold: one list naming
// the client (of weight 1) refuses it.
const DefaultDNSBLThreshold = 1

// ListenerScreen holds a listener's PROXY protocol switch and, on an mx
// listener, the postscreen-style checks before the greeting.
type ListenerScreen struct {
	// ProxyProtocol makes the listener read a PROXY protocol header (v1
	// or v2) from connections of Proxy.Trusted; false by default.
	ProxyProtocol bool
	// GreetDelay is how long an mx listener waits before its greeting;
	// a client that talks meanwhile is dropped. 0 (the default) means
	// no wait.
	GreetDelay time.Duration
	// DNSBL are the DNS blocklists an mx listener asks about each
	// client; none by default.
	DNSBL []DNSBL
	// DNSBLThreshold is the sum of the weights of the lists naming a
	// client at or above which it is refused; at least 1.
	DNSBLThreshold int
}

// DNSBL is one DNS blocklist of a listener.
type DNSBL struct {
	// Zone is the list's zone, lower case, such as "zen.spamhaus.org".
	Zone string
	// Weight counts towards DNSBLThreshold when the list names the
	// client; default 1.
	Weight int
}

// proxy decodes the [proxy] table.
func (d *decoder) proxy(t map[string]any, p *Proxy) {
	if t == nil {
		return
	}
	d.unknown(t, []string{"proxy"}, "trusted")
	p.Trusted = d.prefixes(t, "trusted", "proxy.trusted")
}

// parsePrefixOrAddr parses a CIDR prefix ("10.0.0.0/8") or a single
// address (as a /32 or /128), masked.
func parsePrefixOrAddr(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an address or a CIDR prefix", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or a CIDR prefix", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// listenerScreen decodes a listener's proxy_protocol, greet_delay, dnsbl
// and dnsbl_threshold; k is the listener's key ("listener[0]").
func (d *decoder) listenerScreen(t map[string]any, k string, l *ListenerScreen) {
	d.boolean(t, "proxy_protocol", k+".proxy_protocol", &l.ProxyProtocol)
	if du, ok := d.duration(t, "greet_delay", k+".greet_delay"); ok {
		l.GreetDelay = du
	}
	if n, ok := d.integer(t, "dnsbl_threshold", k+".dnsbl_threshold", 1, 1000); ok {
		l.DNSBLThreshold = int(n)
	}
	v, ok := t["dnsbl"]
	if !ok {
		return
	}
	var list []any
	switch v := v.(type) {
	case []any:
		list = v
	case []map[string]any:
		for _, e := range v {
			list = append(list, e)
		}
	default:
		d.fail(k+".dnsbl", "expected an array of zones or of {zone, weight} tables, got %s", describe(v))
		return
	}
	for i, e := range list {
		ek := fmt.Sprintf("%s.dnsbl[%d]", k, i)
		z := DNSBL{Weight: 1}
		switch e := e.(type) {
		case string:
			z.Zone = e
		case map[string]any:
			d.unknown(e, []string{"listener", "dnsbl"}, "zone", "weight")
			if !d.str(e, "zone", ek+".zone", &z.Zone) && !d.bad[ek+".zone"] {
				d.fail(ek+".zone", "missing")
				continue
			}
			if n, ok := d.integer(e, "weight", ek+".weight", 1, 1000); ok {
				z.Weight = int(n)
			}
		default:
			d.fail(ek, "expected a zone or a {zone, weight} table, got %s", describe(e))
			continue
		}
		z.Zone = strings.TrimSuffix(lower(z.Zone), ".")
		l.DNSBL = append(l.DNSBL, z)
	}
}

// validateProxy checks [proxy] and the listeners' ListenerScreen.
func (c *Config) validateProxy(p *problems) {
	for i, l := range c.Listeners {
		k := fmt.Sprintf("listener[%d]", i)
		if l.ProxyProtocol && len(c.Proxy.Trusted) == 0 {
			p.addf(k+".proxy_protocol", "is true, but [proxy] trusted names no load balancer")
		}
		switch {
		case l.GreetDelay < 0:
			p.addf(k+".greet_delay", "must not be negative")
		case l.GreetDelay > MaxGreetDelay:
			p.addf(k+".greet_delay", "%s is longer than %s", l.GreetDelay, MaxGreetDelay)
		case l.GreetDelay > 0 && l.Role != RoleMX:
			p.addf(k+".greet_delay", "only on an mx listener (submission clients are ours)")
		}
		if len(l.DNSBL) > 0 && l.Role != RoleMX {
			p.addf(k+".dnsbl", "only on an mx listener (submission clients are ours)")
		}
		if l.DNSBLThreshold < 1 {
			p.addf(k+".dnsbl_threshold", "must be at least 1")
		}
		for j, z := range l.DNSBL {
			zk := fmt.Sprintf("%s.dnsbl[%d]", k, j)
			if err := checkDNSName(z.Zone); err != nil {
				p.add(zk+".zone", err)
			} else if slices.IndexFunc(l.DNSBL, func(o DNSBL) bool { return o.Zone == z.Zone }) < j {
				p.addf(zk+".zone", "%q is listed twice", z.Zone)
			}
			if z.Weight < 1 {
				p.addf(zk+".weight", "must be at least 1")
			}
		}
	}
}
