// Package remote implements outbound SMTP delivery (RFC 5321): to the mail
// hosts of a recipient domain in the order and with the TLS a
// policy.Planner decides (STARTTLS per RFC 3207, MTA-STS per RFC 8461,
// DANE per RFC 7672, REQUIRETLS per RFC 8689), or to a configured
// smarthost with authentication (RFC 4954). Sessions are pooled per
// destination and carry several messages each; TLS sessions are resumed.
// The client side of the protocol is smtp.Client, shared with LMTP and
// the load generator (internal/smtp says why it is not go-smtp's).
package remote

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"postern/internal/addrkey"
	"postern/internal/delivery/policy"
	"postern/internal/dns"
	"postern/internal/smtp"
)

// Dialer opens network connections; *net.Dialer implements it.
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// Timeouts bounds each step of a session. Zero fields take the defaults
// of RFC 5321 §4.5.3.2 given for each.
type Timeouts struct {
	Connect   time.Duration // TCP connect and implicit TLS; default 30s
	Greeting  time.Duration // the 220 greeting; default 5m (§4.5.3.2.1)
	Command   time.Duration // EHLO, STARTTLS, AUTH, MAIL, RCPT, RSET; default 5m (§4.5.3.2.2-3)
	DataStart time.Duration // the 354 to DATA; default 2m (§4.5.3.2.4)
	DataBlock time.Duration // each write of message data; default 3m (§4.5.3.2.5)
	DataEnd   time.Duration // the reply to the final dot; default 10m (§4.5.3.2.6)
}

// withDefaults returns t with zero fields set to their defaults.
func (t Timeouts) withDefaults() Timeouts {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&t.Connect, 30*time.Second)
	def(&t.Greeting, 5*time.Minute)
	def(&t.Command, 5*time.Minute)
	def(&t.DataStart, 2*time.Minute)
	def(&t.DataBlock, 3*time.Minute)
	def(&t.DataEnd, 10*time.Minute)
	return t
}

// Smarthost is a relay that takes all mail (or mail for some domains)
// instead of the recipients' MX hosts, for hosts whose port 25 is blocked.
// Its certificate is always verified (WebPKI, for the host part of
// Address) and credentials are sent only over TLS.
type Smarthost struct {
	// Address is "host:port", e.g. "smtp.example.net:587".
	Address string
	// ImplicitTLS selects TLS from the first byte (port 465, RFC 8314
	// §3.3); otherwise STARTTLS is required (port 587).
	ImplicitTLS bool
	// Username and Password are sent with AUTH PLAIN (or LOGIN when only
	// that is offered); no AUTH when Username is empty.
	Username, Password string
	// Domains lists the recipient domains relayed; empty means all.
	Domains []string
	// RootCAs are the roots the relay's certificate must chain to; nil
	// means those of Deliverer.TLSClientConfig, else the system roots.
	RootCAs *x509.CertPool
}

// applies reports whether mail for domain goes through the smarthost.
func (s *Smarthost) applies(domain string) bool {
	if len(s.Domains) == 0 {
		return true
	}
	k := addrkey.DomainKey(domain)
	for _, d := range s.Domains {
		if addrkey.DomainKey(d) == k {
			return true
		}
	}
	return false
}

// Message is one message for recipients in one domain.
type Message struct {
	ID   string // queue id, for logs
	From string // envelope sender; "" for the null reverse-path
	// Rcpts are the recipients, all in one domain.
	Rcpts []string
	// Data is the message, header and body, with CRLF line endings. Its
	// body may be in a file: it is written to the next hop as a stream.
	Data *smtp.Message
	// SMTPUTF8 means the envelope or header needs SMTPUTF8 (RFC 6531).
	SMTPUTF8 bool
	// EightBit means the body has 8-bit data (RFC 6152 BODY=8BITMIME).
	EightBit bool
	// RequireTLS means the message carries REQUIRETLS (RFC 8689 §4).
	RequireTLS bool
	// TLSOptional means the message had "TLS-Required: No" (RFC 8689
	// §4.2.2): the Planner waives the recipient domain's MTA-STS and DANE
	// requirements, never the configured minimum; TLS is used when
	// offered. Ignored with RequireTLS.
	TLSOptional bool
	// Ret and EnvID are MAIL's RET and ENVID, DSN the recipients' NOTIFY
	// and ORCPT (RFC 3461, as smtp.Envelope holds them): passed on to a
	// next hop that offers DSN, left out for one that does not.
	Ret, EnvID string
	DSN        map[string]smtp.RcptDSN
}

// Result is the outcome for one recipient.
type Result struct {
	Rcpt string
	// Delivered is true when the next hop accepted the message for Rcpt.
	Delivered bool
	// NextHopDSN is true, with Delivered, when the next hop offered DSN
	// and so took the DSN parameters: it sends any notice from now on
	// (RFC 3461 §5.2.1).
	NextHopDSN bool
	// Permanent is true for a failure that retrying will not fix (5xx,
	// or a message the next hop cannot take): the sender gets a bounce.
	Permanent bool
	// Code, Enhanced and Text are the last reply that decided the
	// outcome; Code is 0 when no reply did (for example a connection
	// failure), with Enhanced set by this package.
	Code     int
	Enhanced string
	Text     string
	// Host is the mail host last tried (MX name or smarthost).
	Host string
	// TLS is the protection of the session: "plain", "starttls",
	// "mta-sts", "dane", "smarthost", or "" when no session was made.
	TLS string
	// Session describes the session that decided the outcome, for the
	// delivery log; its fields are zero where no session got that far.
	Session Session
	// Err describes a failure; nil when Delivered.
	Err error
}

// Session describes the SMTP session of a Result, as Postfix's status
// lines do (relay=, delays=, tls=).
type Session struct {
	// Addr is the address dialed, "ip:port" (or the smarthost's
	// "host:port").
	Addr string
	// TLSVersion and TLSCipher are the session's TLS version ("TLS 1.3")
	// and cipher suite; "" without TLS.
	TLSVersion, TLSCipher string
	// Verification says how far the server was authenticated:
	// "dane" (TLSA records, RFC 7672), "mta-sts" (RFC 8461), "verified"
	// (WebPKI for a configured minimum, REQUIRETLS or a smarthost),
	// "encrypted" (TLS without an authenticated certificate) or "none"
	// (plaintext).
	Verification string
	// Connect is the time from the start of the delivery to a session
	// ready for the message: planning (DNS, MTA-STS), hosts tried
	// before, dialing, greeting, EHLO, STARTTLS and the checks, or
	// taking a pooled session.
	Connect time.Duration
	// Transmit is the time from MAIL FROM to the reply that decided the
	// outcome.
	Transmit time.Duration
	// Reply is the server's last reply to the transaction, "250 2.0.0
	// Ok: queued as 4F1x2"; RemoteID is the queue id it names, if any
	// (see RemoteQueueID).
	Reply, RemoteID string
}

// Deliverer delivers messages over SMTP. Set the fields before the first
// Deliver and do not change them afterwards; the methods are safe for
// concurrent use. A Deliverer must not be copied after first use.
type Deliverer struct {
	// Hostname is the name sent with EHLO (RFC 5321 §4.1.1.1). Required.
	Hostname string
	// Planner decides the hosts and TLS per domain. Required unless a
	// Smarthost takes all mail.
	Planner policy.Planner
	// Dialer opens TCP connections; nil means a net.Dialer.
	Dialer Dialer
	// TLSClientConfig is the base TLS configuration (RootCAs, for
	// tests); nil means the defaults. It is cloned, never modified.
	TLSClientConfig *tls.Config
	// VerifyTLS checks a connection to a host whose Mode is Verify; nil
	// means host.Verify. Tests inject it; production leaves it nil.
	VerifyTLS func(host *policy.Host, cs tls.ConnectionState) error
	// Pool bounds session reuse.
	Pool PoolOptions
	// Timeouts bounds each step of a session.
	Timeouts Timeouts
	// Smarthost, when set, relays the mail it applies to.
	Smarthost *Smarthost
	// Logger receives one event per attempt; nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock for durations; nil means time.Now.
	Now func() time.Time
	// AfterFunc arms the idle timers of pooled sessions, as
	// time.AfterFunc (stop reports whether it stopped the timer before it
	// fired); nil means time.AfterFunc. Tests inject a fake clock.
	AfterFunc func(d time.Duration, f func()) (stop func() bool)
	// Metrics counts the deliveries (NewMetrics); nil counts into a set
	// registered nowhere.
	Metrics *Metrics

	once     sync.Once
	m        *Metrics
	pool     *pool
	sessions tls.ClientSessionCache
	t        Timeouts
	log      *slog.Logger
}

// init prepares the Deliverer's state on first use.
func (d *Deliverer) init() {
	d.once.Do(func() {
		d.pool = newPool(d.Pool, d.AfterFunc)
		d.sessions = tls.NewLRUClientSessionCache(256)
		d.t = d.Timeouts.withDefaults()
		d.m = d.Metrics
		if d.m == nil {
			d.m = NewMetrics(nil)
		}
		d.log = d.Logger
		if d.log == nil {
			d.log = slog.Default()
		}
	})
}

// now returns the current time from d.Now.
func (d *Deliverer) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

// Close ends all idle pooled sessions with QUIT. Sessions in use end when
// their delivery finishes. Deliver may still be called after Close, but
// its sessions are no longer pooled.
func (d *Deliverer) Close() {
	d.init()
	d.pool.closeAll()
}

// target is one host to try and what its sessions need.
type target struct {
	host      policy.Host
	addrs     []string // "ip:port" or the smarthost's "host:port"
	smarthost *Smarthost
}

// Deliver delivers msg to the hosts for its recipients' domain and returns
// one Result per recipient, in msg.Rcpts order. Hosts are tried in plan
// order, each of their addresses in turn, while the failure is one of the
// session (connection, greeting, EHLO, TLS, MAIL with 4xx, a connection
// lost mid-transaction); once a transaction got recipient replies, the
// outcome is final for this call.
func (d *Deliverer) Deliver(ctx context.Context, msg *Message) []Result {
	d.init()
	start := d.now()
	res := make([]Result, len(msg.Rcpts))
	for i, r := range msg.Rcpts {
		res[i].Rcpt = r
	}
	if len(res) == 0 {
		return res
	}
	defer func() {
		d.m.seconds.Observe(d.now().Sub(start).Seconds())
		for _, r := range res {
			outcome := "deferred"
			switch {
			case r.Delivered:
				outcome = "delivered"
			case r.Permanent:
				outcome = "bounced"
			}
			tlsLabel := r.TLS
			if tlsLabel == "" {
				tlsLabel = "none"
			}
			d.m.deliveries.WithLabelValues(outcome, tlsLabel).Inc()
		}
	}()
	if f := checkAddrs(msg, res); f != nil {
		setAll(res, f)
		return res
	}
	if len(pending(res)) == 0 {
		return res
	}
	// RFC 5321 §2.3.5: the domain's A-label (addrkey); a name that is
	// no valid IDNA2008 name has no MX to ask for (strings.ToLower
	// would have made "wor\u212A.test" work.test).
	domain, err := addrkey.Domain(addrkey.DomainOf(msg.Rcpts[0]))
	if err != nil {
		setAll(res, &failure{permanent: true, enhanced: "5.1.2", err: fmt.Errorf("remote: recipient domain: %w", err)})
		return res
	}
	targets, f := d.targets(ctx, msg, domain)
	if f != nil {
		setAll(res, f)
		return res
	}
	f = &failure{enhanced: "4.4.4", err: fmt.Errorf("remote: %s: no host to try", domain)}
	for i := range targets {
		tg := &targets[i]
		for _, addr := range tg.addrs {
			var next bool
			if f, next = d.attempt(ctx, msg, tg, addr, res, start); !next {
				return res
			}
			if ctx.Err() != nil {
				setAll(res, f)
				return res
			}
		}
	}
	setAll(res, f)
	return res
}

// targets returns the hosts to try for domain, or the failure that ends
// the delivery when there are none.
func (d *Deliverer) targets(ctx context.Context, msg *Message, domain string) ([]target, *failure) {
	if sh := d.Smarthost; sh != nil && sh.applies(domain) {
		name, _, err := net.SplitHostPort(sh.Address)
		if err != nil {
			return nil, &failure{enhanced: "4.3.5", err: fmt.Errorf("remote: smarthost %q: %w", sh.Address, err)}
		}
		return []target{{host: policy.Host{Name: name, Mode: policy.Verify, Source: policy.SourceConfig,
			Reason: "smarthost"}, addrs: []string{sh.Address}, smarthost: sh}}, nil
	}
	if d.Planner == nil {
		return nil, &failure{enhanced: "4.3.5", err: errors.New("remote: no planner configured")}
	}
	plan, err := d.Planner.Plan(ctx, policy.Request{Domain: domain, RequireTLS: msg.RequireTLS, TLSOptional: msg.TLSOptional})
	if err != nil {
		f := &failure{enhanced: "4.4.3", err: fmt.Errorf("remote: plan %s: %w", domain, err)}
		// policy.IsPermanent marks the bounces; a null MX and a domain
		// that does not exist are permanent from any Planner.
		f.permanent = policy.IsPermanent(err) || errors.Is(err, policy.ErrNullMX) ||
			(errors.Is(err, policy.ErrNoHosts) && dns.IsNotFound(err))
		class := "4"
		if f.permanent {
			class = "5"
		}
		switch {
		case errors.Is(err, policy.ErrNullMX):
			f.enhanced = "5.1.10" // RFC 7505 §3
		case errors.Is(err, policy.ErrRequireTLS):
			f.enhanced = class + ".7.10" // RFC 8689 §5
		case errors.Is(err, policy.ErrNoHosts) && dns.IsNotFound(err):
			f.enhanced = "5.1.2" // RFC 3463 §3.2: bad destination system
		case errors.Is(err, policy.ErrNoHosts):
			f.enhanced = class + ".4.4" // every MX refused by policy, RFC 8461 §4.2
		case f.permanent:
			f.enhanced = "5.4.4"
		}
		return nil, f
	}
	var ts []target
	for _, h := range plan.Hosts {
		t := target{host: h}
		for _, a := range h.Addrs {
			t.addrs = append(t.addrs, net.JoinHostPort(a.String(), "25"))
		}
		ts = append(ts, t)
	}
	return ts, nil
}

// failure is the outcome of an attempt that delivered to nobody, for all
// recipients still pending.
type failure struct {
	permanent bool
	rep       reply // Code 0 when no reply decided it
	enhanced  string
	host, tls string
	sess      Session // the session, as far as it got
	err       error
}

// setAll applies f to every recipient without an outcome yet.
func setAll(res []Result, f *failure) {
	for _, i := range pending(res) {
		f.apply(&res[i])
	}
}

// apply sets r from f.
func (f *failure) apply(r *Result) {
	r.Permanent = f.permanent
	r.Code, r.Enhanced, r.Text = f.rep.Code, f.rep.Enhanced, f.rep.Text()
	if r.Enhanced == "" {
		r.Enhanced = f.enhanced
	}
	if r.Text == "" && f.err != nil {
		r.Text = f.err.Error()
	}
	r.Host, r.TLS, r.Session, r.Err = f.host, f.tls, f.sess, f.err
}

// checkAddrs refuses addresses that cannot be sent in a command line: a
// control character (CR, LF, NUL...) would end or corrupt the command
// (every input is hostile, even from our own spool). A bad sender fails
// the message (returned); a bad recipient fails itself (set in res).
func checkAddrs(msg *Message, res []Result) *failure {
	bad := func(s string) bool {
		for i := 0; i < len(s); i++ {
			if s[i] < 0x20 || s[i] == 0x7f {
				return true
			}
		}
		return false
	}
	if bad(msg.From) {
		return &failure{permanent: true, enhanced: "5.1.7", err: fmt.Errorf("remote: bad sender address %q", msg.From)}
	}
	for i, r := range msg.Rcpts {
		if bad(r) || !strings.Contains(r, "@") {
			res[i].Permanent, res[i].Enhanced = true, "5.1.3"
			res[i].Err = fmt.Errorf("remote: bad recipient address %q", r)
			res[i].Text = res[i].Err.Error()
		}
	}
	return nil
}

// domainOf returns the key of addr's domain (addrkey.DomainKey), for logs.
func domainOf(addr string) string { return addrkey.DomainKey(addrkey.DomainOf(addr)) }
