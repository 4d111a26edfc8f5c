package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	mdns "github.com/miekg/dns"
)

// DefaultResolvConf is the file New reads the nameservers from when
// Config.Servers is empty and Config.ResolvConf is "".
const DefaultResolvConf = "/etc/resolv.conf"

// ednsUDPSize is the UDP payload size queries advertise, the DNS Flag Day
// 2020 value that avoids IP fragmentation (RFC 9715 §3.2 recommends it).
const ednsUDPSize = 1232

// maxCNAMEs bounds the CNAME chain an answer may walk through.
const maxCNAMEs = 16

// Config configures a Client. Its zero value asks the nameservers of
// /etc/resolv.conf, without trusting their AD bit and without a cache.
type Config struct {
	// Servers are the recursive resolvers to ask, each "ip:port" (an IP
	// alone means port 53). Host names are refused: finding the resolver
	// must not need the resolver. When Servers is empty, New reads the
	// nameservers from ResolvConf.
	Servers []string

	// ResolvConf is the resolv.conf(5) file to read when Servers is
	// empty; "" means DefaultResolvConf.
	ResolvConf string

	// Timeout bounds one query to one server. Required (positive):
	// Postern's configuration resolves its default (dns.timeout), in
	// internal/config. A
	// query that times out or meets a network error is tried once more,
	// on the next server when there is one (on the same server when not);
	// a SERVFAIL or REFUSED is tried once more only on another server.
	// The caller's context bounds the whole lookup.
	Timeout time.Duration

	// TrustAD makes the Client believe the AD bit of answers, so that
	// Result.Authentic reports DNSSEC validation. Set it only when every
	// server is a validating resolver reached over a path nobody can
	// tamper with: on loopback or a trusted network (RFC 6698 §4.1,
	// RFC 7672 §2.1). When false, Result.Authentic is always false.
	TrustAD bool

	// CacheSize is how many answers (positive and negative) the Client
	// keeps, least recently used out first; 0 disables the cache. Cached
	// answers live for their TTL (for negative answers the SOA's, RFC
	// 2308 §5), at most an hour. Temporary failures are not cached.
	CacheSize int

	// Now returns the current time, for the cache; nil means time.Now.
	Now func() time.Time

	// Dial opens a connection to a server; network is "udp" or "tcp".
	// nil means a net.Dialer's DialContext.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
}

// Client is the real Resolver: it asks recursive resolvers over UDP, and
// over TCP when an answer is truncated. It is safe for concurrent use.
type Client struct {
	servers []string
	timeout time.Duration
	trustAD bool
	now     func() time.Time
	dial    func(ctx context.Context, network, address string) (net.Conn, error)
	cache   *cache // nil when disabled
}

var _ Resolver = (*Client)(nil)

// New returns a Client configured by cfg. It fails when a server is not
// an IP address with an optional port, when no server is configured or
// found in resolv.conf, or when a number in cfg is negative.
func New(cfg Config) (*Client, error) {
	servers := cfg.Servers
	if len(servers) == 0 {
		path := cfg.ResolvConf
		if path == "" {
			path = DefaultResolvConf
		}
		cc, err := mdns.ClientConfigFromFile(path)
		if err != nil {
			return nil, fmt.Errorf("dns: read nameservers: %w", err)
		}
		for _, s := range cc.Servers {
			servers = append(servers, net.JoinHostPort(s, cc.Port))
		}
		if len(servers) == 0 {
			return nil, fmt.Errorf("dns: read nameservers: no nameserver in %s", path)
		}
	}
	c := &Client{
		timeout: cfg.Timeout,
		trustAD: cfg.TrustAD,
		now:     cfg.Now,
		dial:    cfg.Dial,
	}
	for _, s := range servers {
		ap, err := parseServer(s)
		if err != nil {
			return nil, fmt.Errorf("dns: server %q: %w", s, err)
		}
		c.servers = append(c.servers, ap.String())
	}
	if cfg.Timeout <= 0 {
		return nil, fmt.Errorf("dns: timeout %v is not positive", cfg.Timeout)
	}
	switch {
	case cfg.CacheSize < 0:
		return nil, fmt.Errorf("dns: negative cache size %d", cfg.CacheSize)
	case cfg.CacheSize > 0:
		c.cache = newCache(cfg.CacheSize)
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.dial == nil {
		var d net.Dialer
		c.dial = d.DialContext
	}
	return c, nil
}

// parseServer parses "ip:port" or "ip" (port 53).
func parseServer(s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		if ap.Port() == 0 {
			return netip.AddrPort{}, errors.New("port 0")
		}
		return ap, nil
	}
	ip, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"))
	if err != nil {
		return netip.AddrPort{}, errors.New("want ip:port")
	}
	return netip.AddrPortFrom(ip, 53), nil
}

// lookupError is the error of a failed lookup. It reads
// "dns: lookup MX example.com: no such domain[: cause]" and wraps the
// sentinel (ErrNXDomain, ErrNoData or ErrTemporary) and the cause.
type lookupError struct {
	qtype string
	name  string
	kind  error
	cause error // may be nil
}

func (e *lookupError) Error() string {
	s := "dns: lookup " + e.qtype + " " + e.name + ": " + strings.TrimPrefix(e.kind.Error(), "dns: ")
	if e.cause != nil {
		s += ": " + e.cause.Error()
	}
	return s
}

func (e *lookupError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}

// answer is what resolve found: the records of the type asked, owned by
// the name at the end of any CNAME chain.
type answer struct {
	rrs       []mdns.RR
	authentic bool
}

// resolve asks for the records of type qtype at name, from the cache or
// the servers, following CNAMEs. On ErrNXDomain and ErrNoData the answer
// still says whether the denial was authentic.
func (c *Client) resolve(ctx context.Context, name string, qtype uint16) (answer, error) {
	tname := mdns.TypeToString[qtype]
	fq, err := normalizeName(name)
	if err != nil {
		return answer{}, &lookupError{tname, fmt.Sprintf("%q", name), ErrNXDomain, err}
	}
	fail := func(kind, cause error) error {
		return &lookupError{tname, displayName(name), kind, cause}
	}
	key := cacheKey{fq, qtype}
	if c.cache != nil {
		if e, ok := c.cache.get(key, c.now()); ok {
			a := answer{rrs: e.rrs, authentic: e.authentic}
			if e.err != nil {
				return a, fail(e.err, nil)
			}
			return a, nil
		}
	}
	r, err := c.ask(ctx, fq, qtype)
	if err != nil {
		return answer{}, fail(ErrTemporary, err)
	}
	o, err := interpret(r, fq, qtype)
	if err != nil {
		return answer{}, fail(ErrTemporary, err)
	}
	// RFC 6840 §5.7, RFC 4035 §3.2.3: the AD bit is the resolver's word
	// that it validated everything in the answer, CNAMEs included.
	a := answer{rrs: o.rrs, authentic: c.trustAD && r.AuthenticatedData}
	if c.cache != nil {
		c.cache.put(&cacheEntry{key: key, rrs: o.rrs, authentic: a.authentic, err: o.neg}, o.ttl, c.now())
	}
	if o.neg != nil {
		return a, fail(o.neg, nil)
	}
	return a, nil
}

// outcome is what an answer says: records, or a negative sentinel
// (ErrNXDomain or ErrNoData), and how long that may be cached.
type outcome struct {
	rrs []mdns.RR
	neg error
	ttl time.Duration
}

// interpret reads the records of type qtype for fq out of r, following
// the CNAME chain in the answer section (RFC 1034 §3.6.2, §4.3.2). It
// returns the records and how long they may be cached, or ErrNXDomain or
// ErrNoData (with the negative TTL, 0 when the answer has no SOA, RFC 2308
// §5). Its error is the cause of a temporary failure.
func interpret(r *mdns.Msg, fq string, qtype uint16) (outcome, error) {
	switch r.Rcode {
	case mdns.RcodeSuccess, mdns.RcodeNameError:
	default:
		return outcome{}, fmt.Errorf("server answered %s", rcodeName(r.Rcode))
	}
	ttl := uint32(1<<31 - 1)
	cur := fq
	for i := 0; ; i++ {
		var found []mdns.RR
		var cname *mdns.CNAME
		for _, rr := range r.Answer {
			h := rr.Header()
			if h.Class != mdns.ClassINET || !strings.EqualFold(h.Name, cur) {
				continue
			}
			if h.Rrtype == qtype {
				found = append(found, rr)
				ttl = min(ttl, h.Ttl)
			} else if cn, ok := rr.(*mdns.CNAME); ok && cname == nil {
				cname = cn
			}
		}
		if len(found) > 0 {
			return outcome{rrs: found, ttl: time.Duration(ttl) * time.Second}, nil
		}
		if cname == nil {
			break
		}
		if i == maxCNAMEs {
			return outcome{}, errors.New("CNAME chain too long")
		}
		ttl = min(ttl, cname.Hdr.Ttl)
		cur = cname.Target
	}
	// RFC 2308 §5: a negative answer is cached for the smaller of the
	// SOA's TTL and its MINIMUM field, and not at all without an SOA.
	neg := uint32(0)
	for _, rr := range r.Ns {
		if soa, ok := rr.(*mdns.SOA); ok {
			neg = min(ttl, soa.Hdr.Ttl, soa.Minttl)
			break
		}
	}
	o := outcome{neg: ErrNoData, ttl: time.Duration(neg) * time.Second}
	// RFC 6604 §3: with CNAMEs, the RCODE speaks of the last name.
	if r.Rcode == mdns.RcodeNameError {
		o.neg = ErrNXDomain
	}
	return o, nil
}

// rcodeName returns the mnemonic of rcode ("SERVFAIL").
func rcodeName(rcode int) string {
	if s, ok := mdns.RcodeToString[rcode]; ok {
		return s
	}
	return fmt.Sprintf("RCODE%d", rcode)
}

// ask sends the question (fq, qtype) to the servers and returns the first
// answer whose RCODE is NOERROR or NXDOMAIN. It tries at most twice: the
// second time on the next server (RFC 1035 §4.2.1 leaves the choice to
// the resolver).
func (c *Client) ask(ctx context.Context, fq string, qtype uint16) (*mdns.Msg, error) {
	q := new(mdns.Msg)
	q.SetQuestion(fq, qtype) // RD set
	// RFC 6840 §5.7: AD in a query asks for the AD bit in the answer;
	// RFC 3225 §3: DO (in EDNS0, RFC 6891) asks for DNSSEC records, which
	// some resolvers require before they set AD.
	q.AuthenticatedData = true
	q.SetEdns0(ednsUDPSize, true)

	var err error
	for attempt := range 2 {
		server := c.servers[attempt%len(c.servers)]
		if attempt > 0 {
			q.Id = mdns.Id()
		}
		var r *mdns.Msg
		r, err = c.exchange(ctx, server, q)
		if err == nil {
			if r.Rcode == mdns.RcodeSuccess || r.Rcode == mdns.RcodeNameError {
				return r, nil
			}
			// SERVFAIL, REFUSED and the like: the same server would
			// most likely say the same again.
			if len(c.servers) == 1 {
				return r, nil
			}
			err = fmt.Errorf("%s answered %s", server, rcodeName(r.Rcode))
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w (%w)", err, ctx.Err())
		}
	}
	return nil, err
}

// exchange sends q to server over UDP, and again over TCP when the answer
// is truncated (RFC 1035 §4.2.1, RFC 7766 §5).
func (c *Client) exchange(ctx context.Context, server string, q *mdns.Msg) (*mdns.Msg, error) {
	r, err := c.exchangeOver(ctx, "udp", server, q)
	if err == nil && r.Truncated {
		r, err = c.exchangeOver(ctx, "tcp", server, q)
	}
	return r, err
}

// exchangeOver sends q to server over network and reads the answer,
// within the Client's timeout.
func (c *Client) exchangeOver(ctx context.Context, network, server string, q *mdns.Msg) (*mdns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	nc, err := c.dial(ctx, network, server)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	// miekg/dns honours the context's deadline, not its cancellation.
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	mc := &mdns.Client{Net: network, Timeout: c.timeout}
	r, _, err := mc.ExchangeWithConnContext(ctx, q, &mdns.Conn{Conn: nc})
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", network, server, err)
	}
	// The answer must be to our question (RFC 5452 §9.1); the ID was
	// checked by miekg/dns.
	if len(r.Question) != 1 || r.Question[0].Qtype != q.Question[0].Qtype ||
		!strings.EqualFold(r.Question[0].Name, q.Question[0].Name) || !r.Response {
		return nil, fmt.Errorf("%s %s: answer does not match the question", network, server)
	}
	return r, nil
}
