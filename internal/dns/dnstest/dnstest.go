// Package dnstest runs a real DNS server on loopback for tests: it speaks
// UDP and TCP on one port, answers from a zone the test can change while
// it runs, and can be told to fail (SERVFAIL, timeouts) or to vouch for
// answers with the AD bit. Server.Resolver returns Postern's real
// resolver pointed at it, so tests exercise the real client.
package dnstest

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"postern/internal/dns"

	mdns "github.com/miekg/dns"
)

// ResolverTimeout is the per-query timeout of the Resolver a Server
// returns: plenty on loopback, short enough that tests of Timeout stay
// quick (the client tries twice).
const ResolverTimeout = 500 * time.Millisecond

// udpSize is the largest UDP payload the server sends.
const udpSize = 1232

// maxChain bounds the CNAME chain the server follows.
const maxChain = 16

// Zone is the content of a test DNS: records by owner name. Names may be
// given with or without the trailing dot, in any case. A name present
// with no records exists (queries for it get NODATA); a name absent does
// not (NXDOMAIN).
type Zone map[string][]RR

// modeKey names what a mode applies to: a name, and one type or (0) all.
type modeKey struct {
	name  string
	qtype uint16
}

// mode is how the server treats queries for one name (and type).
type mode struct {
	authentic bool // set AD on answers (when the query set DO or AD)
	servfail  bool // answer SERVFAIL
	timeout   bool // do not answer
}

// Server is a DNS server on 127.0.0.1, over UDP and TCP on the same port.
// It acts as a recursive resolver would: it follows CNAMEs, sets TC when
// an answer does not fit in UDP, and sets AD where told to. Its methods
// are safe for concurrent use.
type Server struct {
	addr    string
	udp     *mdns.Server
	tcp     *mdns.Server
	tb      testing.TB
	mu      sync.Mutex
	zone    map[string][]RR
	modes   map[modeKey]mode
	queries int
}

// New starts a server answering from z (which it copies) and stops it
// when the test ends. It fails the test if it cannot listen.
func New(tb testing.TB, z Zone) *Server {
	tb.Helper()
	s := &Server{tb: tb, zone: make(map[string][]RR), modes: make(map[modeKey]mode)}
	for name, rrs := range z {
		s.zone[canonical(name)] = append([]RR(nil), rrs...)
	}
	pc, l, err := listen()
	if err != nil {
		tb.Fatalf("dnstest: %v", err)
	}
	s.addr = pc.LocalAddr().String()
	h := mdns.HandlerFunc(s.serve)
	s.udp = &mdns.Server{PacketConn: pc, Handler: h}
	s.tcp = &mdns.Server{Listener: l, Handler: h, IdleTimeout: func() time.Duration { return 2 * time.Second }}
	for _, srv := range []*mdns.Server{s.udp, s.tcp} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go func() {
			// ActivateAndServe returns when the server shuts down.
			_ = srv.ActivateAndServe()
		}()
		<-started
	}
	tb.Cleanup(func() {
		_ = s.udp.Shutdown()
		_ = s.tcp.Shutdown()
	})
	return s
}

// listen opens UDP and TCP on the same loopback port.
func listen() (net.PacketConn, net.Listener, error) {
	var last error
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, fmt.Errorf("listen udp: %w", err)
		}
		l, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, l, nil
		}
		pc.Close()
		last = err
	}
	return nil, nil, fmt.Errorf("listen tcp: %w", last)
}

// Addr returns the server's address, "127.0.0.1:PORT", for UDP and TCP.
func (s *Server) Addr() string { return s.addr }

// Resolver returns Postern's real resolver asking this server, with
// TrustAD on, no cache and a timeout of ResolverTimeout.
func (s *Server) Resolver() dns.Resolver {
	return s.Client(dns.Config{TrustAD: true, Timeout: ResolverTimeout})
}

// Client returns Postern's real resolver configured by cfg, asking this
// server: cfg.Servers is replaced, and a zero cfg.Timeout means
// ResolverTimeout. It fails the test if dns.New fails.
func (s *Server) Client(cfg dns.Config) *dns.Client {
	cfg.Servers = []string{s.addr}
	if cfg.Timeout == 0 {
		cfg.Timeout = ResolverTimeout
	}
	c, err := dns.New(cfg)
	if err != nil {
		s.tb.Fatalf("dnstest: %v", err)
	}
	return c
}

// Set replaces the records of name with rrs. With no rrs, name exists
// but has no records (NODATA).
func (s *Server) Set(name string, rrs ...RR) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.zone[canonical(name)] = append([]RR{}, rrs...)
}

// Remove deletes name and its records: queries get NXDOMAIN. The modes
// set by Authentic, ServFail and Timeout stay; Reset clears them.
func (s *Server) Remove(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.zone, canonical(name))
}

// Authentic makes answers for the names carry the AD bit, as a validating
// resolver does for a signed zone, when the query sets DO or AD
// (RFC 6840 §5.7). An answer through a CNAME chain is authentic only when
// every name in the chain is.
func (s *Server) Authentic(names ...string) {
	s.setMode(names, func(m *mode) { m.authentic = true })
}

// ServFail makes queries for the names (or through them in a CNAME
// chain) get SERVFAIL, as from a resolver that failed to validate or to
// reach the authoritative servers.
func (s *Server) ServFail(names ...string) {
	s.setMode(names, func(m *mode) { m.servfail = true })
}

// Timeout makes the server drop queries for the names (or through them in
// a CNAME chain), so clients time out.
func (s *Server) Timeout(names ...string) {
	s.setMode(names, func(m *mode) { m.timeout = true })
}

// AuthenticType is Authentic for answers of one type (such as "AAAA")
// only. It panics on an unknown type.
func (s *Server) AuthenticType(qtype string, names ...string) {
	s.setTypeMode(qtype, names, func(m *mode) { m.authentic = true })
}

// ServFailType is ServFail for queries of one type (such as "AAAA") only.
// It panics on an unknown type.
func (s *Server) ServFailType(qtype string, names ...string) {
	s.setTypeMode(qtype, names, func(m *mode) { m.servfail = true })
}

// TimeoutType is Timeout for queries of one type (such as "AAAA") only.
// It panics on an unknown type.
func (s *Server) TimeoutType(qtype string, names ...string) {
	s.setTypeMode(qtype, names, func(m *mode) { m.timeout = true })
}

// Reset clears what Authentic, ServFail, Timeout and their per-type
// variants set for the names.
func (s *Server) Reset(names ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range names {
		n = canonical(n)
		for k := range s.modes {
			if k.name == n {
				delete(s.modes, k)
			}
		}
	}
}

func (s *Server) setTypeMode(qtype string, names []string, f func(*mode)) {
	t, ok := mdns.StringToType[strings.ToUpper(qtype)]
	if !ok {
		panic(fmt.Sprintf("dnstest: unknown type %q", qtype))
	}
	s.setModeKeyed(t, names, f)
}

func (s *Server) setMode(names []string, f func(*mode)) {
	s.setModeKeyed(0, names, f)
}

func (s *Server) setModeKeyed(qtype uint16, names []string, f func(*mode)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range names {
		k := modeKey{canonical(n), qtype}
		m := s.modes[k]
		f(&m)
		s.modes[k] = m
	}
}

// Queries returns how many queries the server has received, over UDP and
// TCP, answered or not.
func (s *Server) Queries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries
}

// serve answers one query.
func (s *Server) serve(w mdns.ResponseWriter, q *mdns.Msg) {
	s.mu.Lock()
	s.queries++
	s.mu.Unlock()
	if len(q.Question) != 1 || q.Opcode != mdns.OpcodeQuery {
		m := new(mdns.Msg)
		m.SetRcode(q, mdns.RcodeNotImplemented)
		_ = w.WriteMsg(m)
		return
	}
	m, drop := s.answer(q)
	if drop {
		return
	}
	size := mdns.MinMsgSize
	if opt := q.IsEdns0(); opt != nil {
		size = int(min(opt.UDPSize(), udpSize))
		m.SetEdns0(udpSize, opt.Do())
	}
	if _, ok := w.LocalAddr().(*net.UDPAddr); ok {
		// RFC 1035 §4.2.1, RFC 6891 §6.2.5: what does not fit is cut
		// and TC set, so the client asks again over TCP.
		m.Truncate(size)
	} else {
		m.Compress = true
	}
	_ = w.WriteMsg(m)
}

// answer builds the reply to q from the zone, or reports that q is to be
// dropped.
func (s *Server) answer(q *mdns.Msg) (*mdns.Msg, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	question := q.Question[0]
	m := new(mdns.Msg)
	m.SetReply(q)
	m.RecursionAvailable = true
	name := canonical(question.Name)
	authentic := true
	for i := 0; ; i++ {
		md, mt := s.modes[modeKey{name, 0}], s.modes[modeKey{name, question.Qtype}]
		md.servfail = md.servfail || mt.servfail
		md.timeout = md.timeout || mt.timeout
		md.authentic = md.authentic || mt.authentic
		if md.timeout {
			return nil, true
		}
		if md.servfail {
			m.Answer = nil
			m.Rcode = mdns.RcodeServerFailure
			return m, false
		}
		authentic = authentic && md.authentic
		rrs, ok := s.zone[name]
		if !ok {
			m.Rcode = mdns.RcodeNameError
			m.Ns = []mdns.RR{soa(name)}
			break
		}
		var found []mdns.RR
		var cname *RR
		for j, rr := range rrs {
			if rr.rrtype == question.Qtype {
				found = append(found, rr.rr(name))
			} else if rr.rrtype == mdns.TypeCNAME && cname == nil {
				cname = &rrs[j]
			}
		}
		if len(found) > 0 || cname == nil {
			m.Answer = append(m.Answer, found...)
			if len(found) == 0 {
				m.Ns = []mdns.RR{soa(name)} // NODATA, RFC 2308 §2.2
			}
			break
		}
		if i == maxChain {
			m.Answer = nil
			m.Rcode = mdns.RcodeServerFailure
			return m, false
		}
		m.Answer = append(m.Answer, cname.rr(name))
		name = cname.target
	}
	// RFC 4035 §3.2.3, RFC 6840 §5.7: AD only for a client that asked.
	if opt := q.IsEdns0(); authentic && (q.AuthenticatedData || opt != nil && opt.Do()) {
		m.AuthenticatedData = true
	}
	return m, false
}

// soa returns the SOA record of a negative answer about name (RFC 2308
// §3): owned by name's parent domain, with NegativeTTL as TTL and
// MINIMUM.
func soa(name string) mdns.RR {
	zone := "."
	if i := strings.IndexByte(name, '.'); i >= 0 && i+1 < len(name) {
		zone = name[i+1:]
	}
	return &mdns.SOA{
		Hdr:     mdns.RR_Header{Name: zone, Rrtype: mdns.TypeSOA, Class: mdns.ClassINET, Ttl: NegativeTTL},
		Ns:      "ns.dnstest.",
		Mbox:    "hostmaster.dnstest.",
		Serial:  1,
		Refresh: 3600,
		Retry:   600,
		Expire:  86400,
		Minttl:  NegativeTTL,
	}
}
