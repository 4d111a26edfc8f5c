package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// ContextDialer opens network connections; *net.Dialer implements it.
type ContextDialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// Dialer opens TCP connections to "host:port" addresses, looking the
// host name up through Resolver, never through the system's resolver
// (/etc/resolv.conf, /etc/hosts): a name that delivery's policy depends
// on, such as an MTA-STS policy host, is found the way its MX and TLSA
// records are. It implements ContextDialer and suits
// http.Transport.DialContext. Its methods are safe for concurrent use.
type Dialer struct {
	// Resolver looks host names up. Required.
	Resolver Resolver
	// Dialer connects to the addresses found; nil means a net.Dialer.
	Dialer ContextDialer
}

// DialContext connects to address ("host:port"; the host an IP address
// or a name) over network ("tcp", "tcp4" or "tcp6"). A name's addresses
// are tried in the order Resolver returned them until one connects; the
// error of each is returned when none does.
func (d *Dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("dns: dial %s: %w", address, err)
	}
	dialer := d.Dialer
	if dialer == nil {
		dialer = &net.Dialer{}
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return dialer.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
	}
	addrs, _, err := d.Resolver.LookupIP(ctx, host)
	if len(addrs) == 0 {
		if err == nil {
			err = ErrNoData
		}
		return nil, fmt.Errorf("dns: dial %s: %w", address, err)
	}
	var errs []error
	for _, a := range addrs {
		if network == "tcp4" && !a.Unmap().Is4() || network == "tcp6" && !a.Is6() {
			continue
		}
		c, err := dialer.DialContext(ctx, network, net.JoinHostPort(a.String(), port))
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("dns: dial %s: no %s address: %w", address, network, ErrNoData)
	}
	return nil, fmt.Errorf("dns: dial %s: %w", address, errors.Join(errs...))
}
