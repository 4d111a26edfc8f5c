package mailauth

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"

	"postern/internal/dns"
)

// dnsError converts an error of a dns.Resolver into the *net.DNSError the
// libraries understand: "not found" (NXDOMAIN or NODATA: a void lookup,
// RFC 7208 §4.6.4) or temporary (RFC 7208 §2.6.6 temperror).
func dnsError(name string, err error) error {
	if err == nil {
		return nil
	}
	return &net.DNSError{
		Err:         err.Error(),
		Name:        name,
		IsNotFound:  dns.IsNotFound(err),
		IsTemporary: errors.Is(err, dns.ErrTemporary) || !dns.IsNotFound(err),
	}
}

// spfResolver adapts a dns.Resolver to blitiri.com.ar/go/spf's
// DNSResolver.
type spfResolver struct{ r dns.Resolver }

func (s spfResolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	txt, _, err := s.r.LookupTXT(ctx, name)
	return txt, dnsError(name, err)
}

func (s spfResolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	mxs, _, err := s.r.LookupMX(ctx, name)
	if err != nil {
		return nil, dnsError(name, err)
	}
	out := make([]*net.MX, len(mxs))
	for i, m := range mxs {
		out[i] = &net.MX{Host: m.Host + ".", Pref: m.Pref}
	}
	return out, nil
}

func (s spfResolver) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	ips, _, err := s.r.LookupIP(ctx, host)
	if err != nil {
		return nil, dnsError(host, err)
	}
	out := make([]net.IPAddr, len(ips))
	for i, ip := range ips {
		out[i] = net.IPAddr{IP: net.IP(ip.Unmap().AsSlice())}
	}
	return out, nil
}

func (s spfResolver) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return nil, &net.DNSError{Err: "bad address", Name: addr, IsNotFound: true}
	}
	names, _, err := s.r.LookupPTR(ctx, ip)
	if err != nil {
		return nil, dnsError(addr, err)
	}
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = strings.TrimSuffix(n, ".") + "."
	}
	return out, nil
}

// txtFunc returns a LookupTXT function for go-msgauth bound to ctx.
func txtFunc(ctx context.Context, r dns.Resolver) func(string) ([]string, error) {
	return func(name string) ([]string, error) {
		txt, _, err := r.LookupTXT(ctx, name)
		return txt, dnsError(name, err)
	}
}
