package smtpd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"postern/internal/dns"
	"postern/internal/metrics"
	"postern/internal/smtp"
)

// Screen holds the postscreen-style checks an mx listener makes before
// its greeting, after the admission gate and before any TLS byte. The
// zero value checks nothing.
//
// Greeting delay: the server waits GreetDelay before its 220. SMTP has
// the server speak first (RFC 5321 §3.1, §4.3.1); a client that talks
// before the greeting is a bot that does not wait for replies, and is
// told 521 5.5.1 and dropped. 521 is "does not accept mail", which may
// replace the greeting and be followed at once by the close (RFC 7504
// §3); the same reply as Postfix's postscreen with
// postscreen_greet_action = drop.
//
// DNSBL: the client's address is looked up in each zone of DNSBL at
// once, while the server waits (RFC 5782 §2.1: the reversed address
// under the zone; an A record in 127.0.0.0/8 means listed, except
// 127.255.255.0/24, which DNSBLs such as Spamhaus use for errors). The
// weights of the zones that list it are added; at or above
// DNSBLThreshold the client is told 521 5.7.1 and dropped, before the
// greeting (postscreen's dnsbl_action = drop). Answers not in when the
// greeting delay ends (or, without one, after DNSBLTimeout) are not
// waited for: a slow DNSBL delays no one.
type Screen struct {
	// GreetDelay is how long the server waits before its greeting;
	// 0 means no wait (and no pregreet check).
	GreetDelay time.Duration
	// DNSBL are the zones to ask; none means no lookups.
	DNSBL []DNSBLZone
	// DNSBLThreshold is the score at or above which a client is
	// refused; at least 1, required with DNSBL (Postern's configuration
	// resolves its default, in internal/config).
	DNSBLThreshold int
	// Resolver answers the DNSBL lookups; required with DNSBL.
	Resolver dns.Resolver
	// DNSBLTimeout bounds the lookups when GreetDelay is 0; 0 means 2
	// seconds.
	DNSBLTimeout time.Duration
	// Passed, when non-nil, remembers the clients that passed with a
	// score of 0 and every DNSBL answer in: while remembered they skip
	// the screen (no delay, no lookups), as with postscreen's cache.
	Passed PassCache
}

// PassCache remembers the clients that passed the Screen. Errors are
// logged and the client is screened as if not remembered.
type PassCache interface {
	// Passed reports whether addr passed recently, at now.
	Passed(ctx context.Context, addr netip.Addr, now time.Time) (bool, error)
	// Pass records that addr passed at now.
	Pass(ctx context.Context, addr netip.Addr, now time.Time) error
}

// DNSBLZone is one DNS blocklist and the weight of its listing.
type DNSBLZone struct {
	// Zone is the list's DNS zone, such as "zen.spamhaus.org".
	Zone string
	// Weight is added to the client's score when the zone lists it;
	// 0 means 1.
	Weight int
}

// headerConn is a connection with a header to read before the session,
// such as a *proxyproto.Conn (the PROXY protocol).
type headerConn interface{ ReadHeader() error }

// prelude reads the connection's header, if it has one, and sets the
// session's remote address; it reports false when the session must end
// at once. It runs in the session's goroutine, never in the accept
// loop: reading a PROXY header waits for the client.
func (s *session) prelude() bool {
	if hc, ok := s.raw.(headerConn); ok {
		if err := hc.ReadHeader(); err != nil {
			metrics.ProxyHeaderErrors.WithLabelValues(s.srv.Name).Inc()
			s.log.Info("session refused: proxy header", "err", err)
			return false
		}
	}
	if a, ok := s.raw.RemoteAddr().(*net.TCPAddr); ok {
		ap := a.AddrPort()
		s.remote = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return true
}

// screen makes the Screen's checks on an mx listener and reports false
// when the client was refused (or left) and the session must end: the
// DNSBL lookups and the pregreet read run together until the greeting
// delay ends (or the lookups are in, without one).
func (s *session) screen() bool {
	sc := s.srv.Screen
	if sc == nil || s.srv.Role != RoleMX || (sc.GreetDelay <= 0 && len(sc.DNSBL) == 0) {
		return true
	}
	if s.screenCached(sc) {
		return true
	}
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	bound := screenBound(sc)
	d, stopLookups := s.startDNSBL(ctx, sc, bound)
	defer stopLookups()
	pg := s.startPregreet(sc.GreetDelay)
	end, stopTimer := s.srv.timer(bound)
	defer stopTimer()
	for {
		select {
		case err := <-pg.done:
			pg.done = nil
			return s.screenRead(err)
		case h := <-d.hits:
			d.add(h, s.log)
			if d.score >= sc.DNSBLThreshold {
				return s.dnsblRefuse(pg, d, sc.DNSBLThreshold)
			}
			if d.pending == 0 && sc.GreetDelay <= 0 {
				return s.screenPass(sc, pg, d)
			}
		case <-end:
			return s.screenPass(sc, pg, d)
		case <-s.srv.done:
			// Shutting down: serve answers 421 next.
			pg.stop()
			return true
		}
	}
}

// screenCached reports whether the client passed the screen recently
// (Screen.Passed) and skips it.
func (s *session) screenCached(sc *Screen) bool {
	if sc.Passed == nil || !s.remote.IsValid() {
		return false
	}
	ok, err := sc.Passed.Passed(s.ctx, s.remote.Addr(), s.srv.now())
	if err != nil {
		s.log.Warn("screen pass cache failed", "err", err)
	}
	if ok {
		metrics.ScreenResults.WithLabelValues(s.srv.Name, "cached").Inc()
	}
	return ok
}

// screenBound is how long the screen lasts at most: the greeting delay,
// or without one the DNSBL timeout.
func screenBound(sc *Screen) time.Duration {
	if sc.GreetDelay > 0 {
		return sc.GreetDelay
	}
	if sc.DNSBLTimeout > 0 {
		return sc.DNSBLTimeout
	}
	return 2 * time.Second
}

// dnsblScore collects the answers of the DNSBL zones asked about one
// client.
type dnsblScore struct {
	hits     chan dnsblHit
	pending  int // lookups not answered yet
	score    int
	listedBy []string
}

// startDNSBL asks every zone of sc about the client at once, for at
// most bound; the returned function ends the lookups still running.
func (s *session) startDNSBL(ctx context.Context, sc *Screen, bound time.Duration) (*dnsblScore, context.CancelFunc) {
	hits := make(chan dnsblHit, len(sc.DNSBL))
	d := &dnsblScore{hits: hits}
	if len(sc.DNSBL) == 0 || sc.Resolver == nil || !s.remote.IsValid() {
		return d, func() {}
	}
	lctx, cancel := context.WithTimeout(ctx, bound)
	addr := s.remote.Addr()
	for _, z := range sc.DNSBL {
		d.pending++
		go func() { hits <- lookupDNSBL(lctx, sc.Resolver, z, addr) }()
	}
	return d, cancel
}

// add counts the answer h.
func (d *dnsblScore) add(h dnsblHit, log *slog.Logger) {
	d.pending--
	if h.err != nil {
		log.Debug("dnsbl lookup failed", "zone", h.zone, "err", h.err)
	}
	if h.listed {
		metrics.DNSBLHits.WithLabelValues(h.zone).Inc()
		d.score += h.weight
		d.listedBy = append(d.listedBy, h.zone)
	}
}

// pregreet is the pregreet check: a read that waits for the client,
// interrupted when the wait is over.
type pregreet struct {
	s    *session
	done chan error // the read's result; nil when no read is pending
}

// startPregreet starts the read when there is a greeting delay.
func (s *session) startPregreet(delay time.Duration) *pregreet {
	p := &pregreet{s: s}
	if delay > 0 {
		done := make(chan error, 1)
		p.done = done
		s.raw.SetReadDeadline(time.Time{})
		go func() {
			_, err := s.br.Peek(1)
			done <- err
		}()
	}
	return p
}

// stop interrupts the read and returns its result:
// os.ErrDeadlineExceeded when the client sent nothing (or no read was
// pending).
func (p *pregreet) stop() error {
	if p.done == nil {
		return os.ErrDeadlineExceeded
	}
	p.s.raw.SetReadDeadline(time.Unix(1, 0))
	err := <-p.done
	p.done = nil
	p.s.raw.SetReadDeadline(time.Time{})
	return err
}

// dnsblRefuse refuses a client whose DNSBL score reached threshold,
// unless it talked first (then that is the reason).
func (s *session) dnsblRefuse(pg *pregreet, d *dnsblScore, threshold int) bool {
	if err := pg.stop(); err == nil {
		return s.screenRead(nil)
	}
	metrics.ScreenResults.WithLabelValues(s.srv.Name, "dnsbl").Inc()
	zones := strings.Join(d.listedBy, ", ")
	s.fail("dnsbl", &smtp.Error{Code: 521, Enhanced: "5.7.1",
		Message: fmt.Sprintf("Service unavailable; client [%s] listed by %s", s.remote.Addr(), zones),
		Reason:  fmt.Sprintf("dnsbl score %d >= %d (%s)", d.score, threshold, zones)})
	s.quit = true
	return false
}

// screenPass ends the wait: the client passes unless it talked first or
// left meanwhile. A client with a score of 0 and every answer in is
// remembered (Screen.Passed).
func (s *session) screenPass(sc *Screen, pg *pregreet, d *dnsblScore) bool {
	if err := pg.stop(); !errors.Is(err, os.ErrDeadlineExceeded) {
		return s.screenRead(err)
	}
	metrics.ScreenResults.WithLabelValues(s.srv.Name, "pass").Inc()
	if len(d.listedBy) > 0 {
		s.log.Info("dnsbl listed below threshold", "score", d.score, "threshold", sc.DNSBLThreshold, "zones", d.listedBy)
	}
	if sc.Passed != nil && d.score == 0 && d.pending == 0 && s.remote.IsValid() {
		if err := sc.Passed.Pass(s.ctx, s.remote.Addr(), s.srv.now()); err != nil {
			s.log.Warn("screen pass cache failed", "err", err)
		}
	}
	return true
}

// screenRead ends the screen when the pregreet read returned: with data
// (err nil) the client talked first; otherwise it left or failed.
func (s *session) screenRead(err error) bool {
	if err == nil {
		metrics.ScreenResults.WithLabelValues(s.srv.Name, "pregreet").Inc()
		s.fail("pregreet", &smtp.Error{Code: 521, Enhanced: "5.5.1",
			Message: "Protocol error: talking before the greeting",
			Reason:  "pregreet: the client sent data before the greeting"})
		s.quit = true
		return false
	}
	metrics.ScreenResults.WithLabelValues(s.srv.Name, "hangup").Inc()
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		s.log.Debug("client left before the greeting", "err", err)
	} else {
		s.log.Info("read error before the greeting", "err", err)
	}
	return false
}

// dnsblHit is the answer of one DNSBL zone.
type dnsblHit struct {
	zone   string
	weight int
	listed bool
	err    error
}

// lookupDNSBL asks zone z about addr.
func lookupDNSBL(ctx context.Context, r dns.Resolver, z DNSBLZone, addr netip.Addr) dnsblHit {
	h := dnsblHit{zone: z.Zone, weight: max(z.Weight, 1)}
	ips, _, err := r.LookupIP(ctx, DNSBLName(addr, z.Zone))
	if err != nil && !dns.IsNotFound(err) {
		h.err = err
	}
	for _, ip := range ips {
		if Listed(ip) {
			h.listed = true
		}
	}
	return h
}

// Listed reports whether a DNSBL's A record means "listed": an address
// in 127.0.0.0/8 but not in 127.255.255.0/24, which Spamhaus and others
// return for errors such as a query through a public resolver.
func Listed(a netip.Addr) bool {
	a = a.Unmap()
	if !a.Is4() {
		return false
	}
	b := a.As4()
	return b[0] == 127 && !(b[1] == 255 && b[2] == 255)
}

// DNSBLName returns the name to look up for addr in zone (RFC 5782
// §2.1 and §2.4): the four octets of an IPv4 address, or the 32 nibbles
// of an IPv6 address, in reverse order, then the zone.
func DNSBLName(addr netip.Addr, zone string) string {
	addr = addr.Unmap()
	var b strings.Builder
	if addr.Is4() {
		o := addr.As4()
		fmt.Fprintf(&b, "%d.%d.%d.%d.", o[3], o[2], o[1], o[0])
	} else {
		const hexd = "0123456789abcdef"
		o := addr.As16()
		for i := 15; i >= 0; i-- {
			b.WriteByte(hexd[o[i]&0xf])
			b.WriteByte('.')
			b.WriteByte(hexd[o[i]>>4])
			b.WriteByte('.')
		}
	}
	b.WriteString(strings.TrimSuffix(zone, "."))
	return b.String()
}
