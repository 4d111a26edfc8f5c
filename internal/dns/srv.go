package dns

import (
	"context"

	mdns "github.com/miekg/dns"
)

// SRV is one SRV record (RFC 2782).
type SRV struct {
	// Target is the host, lower case without the trailing dot; "" for
	// ".", which says the service is not available at this domain
	// (RFC 2782, RFC 6186 §3).
	Target   string
	Port     uint16
	Priority uint16
	Weight   uint16
}

// LookupSRV returns the SRV records of name, such as
// "_submissions._tcp.example.com" (RFC 2782), unsorted, following
// CNAMEs. It is not part of Resolver: `postern check` uses it for the
// records mail clients look up (RFC 6186, RFC 8314 §5.1).
func (c *Client) LookupSRV(ctx context.Context, name string) ([]SRV, Result, error) {
	a, err := c.resolve(ctx, name, mdns.TypeSRV)
	if err != nil {
		return nil, Result{Authentic: a.authentic}, err
	}
	out := make([]SRV, 0, len(a.rrs))
	for _, rr := range a.rrs {
		if s, ok := rr.(*mdns.SRV); ok {
			out = append(out, SRV{Target: hostName(s.Target), Port: s.Port, Priority: s.Priority, Weight: s.Weight})
		}
	}
	return out, Result{Authentic: a.authentic}, nil
}
