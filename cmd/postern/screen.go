package main

import (
	"net"

	"postern/internal/config"
	"postern/internal/dns"
	"postern/internal/proxyproto"
	"postern/internal/smtpd"
)

// proxyListener wraps l in the PROXY protocol when the listener has
// proxy_protocol: connections from [proxy] trusted must then start with
// a header, whose client address every check and log uses.
func proxyListener(cfg *config.Config, lc config.Listener, l net.Listener) net.Listener {
	if !lc.ProxyProtocol {
		return l
	}
	return &proxyproto.Listener{Listener: l, Trusted: cfg.Proxy.Trusted}
}

// screenOf returns the checks an mx listener makes before its greeting
// (greet_delay, dnsbl), or nil when it makes none.
func screenOf(lc config.Listener, r dns.Resolver) *smtpd.Screen {
	if lc.Role != config.RoleMX || (lc.GreetDelay <= 0 && len(lc.DNSBL) == 0) {
		return nil
	}
	sc := &smtpd.Screen{GreetDelay: lc.GreetDelay, DNSBLThreshold: lc.DNSBLThreshold, Resolver: r}
	for _, z := range lc.DNSBL {
		sc.DNSBL = append(sc.DNSBL, smtpd.DNSBLZone{Zone: z.Zone, Weight: z.Weight})
	}
	return sc
}
