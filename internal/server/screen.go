package server

import (
	"net"

	"postern/internal/admission"
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
// (greet_delay, dnsbl), or nil when it makes none. Clients that pass are
// remembered in the admission store (shared by the nodes with Redis) for
// admission.ScreenPassTTL.
func screenOf(lc config.Listener, r dns.Resolver, store admission.Store) *smtpd.Screen {
	sc := screenOptions(lc)
	if sc != nil {
		sc.Resolver, sc.Passed = r, admission.ScreenPasses{Store: store}
	}
	return sc
}
