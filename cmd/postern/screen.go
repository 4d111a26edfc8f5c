package main

import (
	"context"
	"net"
	"net/netip"
	"time"

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
// screenPassTTL.
func screenOf(lc config.Listener, r dns.Resolver, store admission.Store) *smtpd.Screen {
	sc := screenOptions(lc)
	if sc != nil {
		sc.Resolver, sc.Passed = r, screenPass{store}
	}
	return sc
}

// screenPassTTL is how long a client that passed the port-25 screen
// skips it (postscreen's postscreen_greet_ttl is a day too).
const screenPassTTL = 24 * time.Hour

// screenPass is the smtpd.PassCache on the admission store: a counter
// per address whose window is screenPassTTL.
type screenPass struct{ store admission.Store }

func screenPassKey(a netip.Addr) string { return "screen-pass:" + a.Unmap().String() }

// Passed implements smtpd.PassCache.
func (p screenPass) Passed(ctx context.Context, a netip.Addr, now time.Time) (bool, error) {
	n, err := p.store.Count(ctx, screenPassKey(a), now)
	return n > 0, err
}

// Pass implements smtpd.PassCache.
func (p screenPass) Pass(ctx context.Context, a netip.Addr, now time.Time) error {
	_, err := p.store.Incr(ctx, screenPassKey(a), 1, now, screenPassTTL)
	return err
}
