package dns

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"

	mdns "github.com/miekg/dns"
)

// LookupMX returns the MX records of name, unsorted. A null MX (RFC 7505
// §3) comes back as one MX with Host "".
func (c *Client) LookupMX(ctx context.Context, name string) ([]MX, Result, error) {
	a, err := c.resolve(ctx, name, mdns.TypeMX)
	if err != nil {
		return nil, Result{Authentic: a.authentic}, err
	}
	out := make([]MX, 0, len(a.rrs))
	for _, rr := range a.rrs {
		if mx, ok := rr.(*mdns.MX); ok {
			out = append(out, MX{Host: hostName(mx.Mx), Pref: mx.Preference})
		}
	}
	return out, Result{Authentic: a.authentic}, nil
}

// LookupTXT returns the TXT records of name, each record's
// character-strings concatenated (RFC 7208 §3.3, RFC 6376 §3.6.2.2).
func (c *Client) LookupTXT(ctx context.Context, name string) ([]string, Result, error) {
	a, err := c.resolve(ctx, name, mdns.TypeTXT)
	if err != nil {
		return nil, Result{Authentic: a.authentic}, err
	}
	out := make([]string, 0, len(a.rrs))
	for _, rr := range a.rrs {
		if txt, ok := rr.(*mdns.TXT); ok {
			out = append(out, joinTXT(txt.Txt))
		}
	}
	return out, Result{Authentic: a.authentic}, nil
}

// LookupTLSA returns the TLSA records of name (RFC 6698 §2.1), following
// CNAMEs. Whether the answer may be used for DANE is the caller's call,
// from Result.Authentic (RFC 7672 §2.2).
func (c *Client) LookupTLSA(ctx context.Context, name string) ([]TLSA, Result, error) {
	a, err := c.resolve(ctx, name, mdns.TypeTLSA)
	if err != nil {
		return nil, Result{Authentic: a.authentic}, err
	}
	out := make([]TLSA, 0, len(a.rrs))
	for _, rr := range a.rrs {
		t, ok := rr.(*mdns.TLSA)
		if !ok {
			continue
		}
		data, err := hex.DecodeString(t.Certificate)
		if err != nil {
			return nil, Result{}, &lookupError{"TLSA", displayName(name), ErrTemporary, fmt.Errorf("bad TLSA data: %w", err)}
		}
		out = append(out, TLSA{Usage: t.Usage, Selector: t.Selector, MatchingType: t.MatchingType, Data: data})
	}
	return out, Result{Authentic: a.authentic}, nil
}

// LookupPTR returns the PTR names of ip (RFC 1035 §3.5, RFC 3596 §2.5),
// lower case without the trailing dot. An IPv4-mapped IPv6 address is
// looked up as the IPv4 address.
func (c *Client) LookupPTR(ctx context.Context, ip netip.Addr) ([]string, Result, error) {
	if !ip.IsValid() {
		return nil, Result{}, &lookupError{"PTR", "invalid IP", ErrNXDomain, errors.New("no address")}
	}
	arpa, err := mdns.ReverseAddr(ip.Unmap().WithZone("").String())
	if err != nil {
		return nil, Result{}, &lookupError{"PTR", ip.String(), ErrNXDomain, err}
	}
	a, err := c.resolve(ctx, arpa, mdns.TypePTR)
	if err != nil {
		return nil, Result{Authentic: a.authentic}, err
	}
	out := make([]string, 0, len(a.rrs))
	for _, rr := range a.rrs {
		if p, ok := rr.(*mdns.PTR); ok {
			out = append(out, hostName(p.Ptr))
		}
	}
	return out, Result{Authentic: a.authentic}, nil
}

// LookupIP returns the A and AAAA records of host, asked for at the same
// time, IPv4 addresses first. It returns ErrNoData (or ErrNXDomain) only
// when neither type has records. Result.Authentic is true only when both
// answers, positive or negative, are authentic.
//
// When one type fails temporarily, LookupIP returns an error wrapping
// ErrTemporary and, alongside it, the addresses of the other type if it
// has any, with Result.Authentic telling whether that answer was
// authentic. A caller that must be sure it sees every address (DANE,
// RFC 7672 §2.2.2) retries later; one that prefers to deliver now may use
// the addresses it got.
func (c *Client) LookupIP(ctx context.Context, host string) ([]netip.Addr, Result, error) {
	type res struct {
		a   answer
		err error
	}
	ch := make(chan res, 1)
	go func() {
		a, err := c.resolve(ctx, host, mdns.TypeAAAA)
		ch <- res{a, err}
	}()
	a4, err4 := c.resolve(ctx, host, mdns.TypeA)
	r6 := <-ch
	a6, err6 := r6.a, r6.err

	var out []netip.Addr
	for _, rr := range a4.rrs {
		if a, ok := rr.(*mdns.A); ok {
			if ip, ok := netip.AddrFromSlice(a.A); ok {
				out = append(out, ip.Unmap())
			}
		}
	}
	for _, rr := range a6.rrs {
		if a, ok := rr.(*mdns.AAAA); ok {
			if ip, ok := netip.AddrFromSlice(a.AAAA); ok {
				out = append(out, ip)
			}
		}
	}
	temp4, temp6 := errors.Is(err4, ErrTemporary), errors.Is(err6, ErrTemporary)
	switch {
	case temp4 && temp6:
		return nil, Result{}, err4
	case temp4:
		return out, Result{Authentic: a6.authentic && len(out) > 0}, err4
	case temp6:
		return out, Result{Authentic: a4.authentic && len(out) > 0}, err6
	}
	r := Result{Authentic: a4.authentic && a6.authentic}
	if len(out) == 0 {
		// Both negative. NXDOMAIN wins over NODATA when either says
		// so; they should agree.
		if errors.Is(err6, ErrNXDomain) {
			return nil, r, err6
		}
		if err4 == nil {
			return nil, r, &lookupError{"A", displayName(host), ErrNoData, nil}
		}
		return nil, r, err4
	}
	return out, r, nil
}
