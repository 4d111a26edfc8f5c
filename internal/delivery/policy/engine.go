package policy

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"postern/internal/dns"
)

// Defaults of Options.
const (
	// DefaultMTASTSCacheSize is the number of domains whose MTA-STS
	// policy is kept when Options.MTASTSCacheSize is zero.
	DefaultMTASTSCacheSize = 4096
	// DefaultFetchTimeout bounds one MTA-STS policy fetch when
	// Options.FetchTimeout is zero. A fetch that fails or times out
	// leaves the cached policy in force (RFC 8461 §5.1).
	DefaultFetchTimeout = 10 * time.Second
	// DefaultMaxHosts caps the MX hosts considered per domain when
	// Options.MaxHosts is zero.
	DefaultMaxHosts = 10
)

// Options configure an Engine. Resolver is required; every other field
// has the documented default when zero.
type Options struct {
	// Resolver answers the MX, address, TXT and TLSA queries. DANE is
	// used only for answers it marks Authentic.
	Resolver dns.Resolver
	// HTTPClient fetches MTA-STS policies. Its transport must check
	// certificates (RFC 8461 §3.3). The Engine uses a copy that never
	// follows redirects. Nil means a client that looks the policy host
	// up through Resolver (like every other name delivery depends on;
	// never through /etc/resolv.conf, and through no proxy), connects
	// with Dialer and trusts Roots.
	HTTPClient *http.Client
	// Dialer opens the connections of the default HTTPClient, to the
	// addresses Resolver gave for the policy host. Nil means a
	// net.Dialer; tests inject one.
	Dialer dns.ContextDialer
	// Roots are the WebPKI roots Host.Verify checks certificates against
	// for MTA-STS and a configured "verify", and the default HTTPClient
	// trusts. Nil means the system roots.
	Roots *x509.CertPool
	// Minimum is the configured minimum Mode per recipient domain (any
	// case, trailing dot or not); the key "*" applies to every domain
	// not listed. A missing entry means Opportunistic. New copies it.
	Minimum map[string]Mode
	// Now returns the current time (policy expiry, certificate validity).
	// Nil means time.Now.
	Now func() time.Time
	// Rand returns a uniform random int in [0, n); it orders MX hosts of
	// equal preference. It must be safe for concurrent use. Nil means
	// math/rand/v2.IntN.
	Rand func(n int) int
	// Logger receives one event per notable decision. Nil discards.
	Logger *slog.Logger
	// MTASTSCacheSize caps the number of domains whose MTA-STS policy is
	// cached (least recently used out first). Zero means
	// DefaultMTASTSCacheSize.
	MTASTSCacheSize int
	// FetchTimeout bounds one MTA-STS policy fetch. Zero means
	// DefaultFetchTimeout.
	FetchTimeout time.Duration
	// MaxHosts caps the MX hosts considered per domain, in preference
	// order. Zero means DefaultMaxHosts.
	MaxHosts int
	// Metrics counts the plans, fetches and testing-mode failures
	// (NewMetrics); nil counts into a set registered nowhere.
	Metrics *Metrics
}

// Engine is the Planner Postern uses: MX from the DNS, TLS requirements
// from DANE, MTA-STS (policies cached in memory) and the configured
// minimum. It is safe for concurrent use.
type Engine struct {
	opts     Options
	http     *http.Client
	log      *slog.Logger
	sts      *stsCache
	verified verifiedCache
}

var _ Planner = (*Engine)(nil)

// New returns an Engine with opts. It panics if opts.Resolver is nil.
func New(opts Options) *Engine {
	if opts.Resolver == nil {
		panic("policy: New without a Resolver")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Rand == nil {
		opts.Rand = rand.IntN
	}
	if opts.MTASTSCacheSize <= 0 {
		opts.MTASTSCacheSize = DefaultMTASTSCacheSize
	}
	if opts.FetchTimeout <= 0 {
		opts.FetchTimeout = DefaultFetchTimeout
	}
	if opts.MaxHosts <= 0 {
		opts.MaxHosts = DefaultMaxHosts
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	minimum := make(map[string]Mode, len(opts.Minimum))
	for d, m := range opts.Minimum {
		minimum[strings.TrimSuffix(strings.ToLower(d), ".")] = m
	}
	opts.Minimum = minimum
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var client http.Client
	if opts.HTTPClient != nil {
		client = *opts.HTTPClient
	} else {
		dialer := &dns.Dialer{Resolver: opts.Resolver, Dialer: opts.Dialer}
		client.Transport = &http.Transport{
			DialContext:         dialer.DialContext,
			TLSClientConfig:     &tls.Config{RootCAs: opts.Roots},
			TLSHandshakeTimeout: opts.FetchTimeout,
			ForceAttemptHTTP2:   true,
			MaxIdleConns:        16,
			IdleConnTimeout:     time.Minute,
		}
	}
	client.CheckRedirect = noRedirect
	return &Engine{
		opts: opts,
		http: &client,
		log:  log.With("component", "delivery/policy"),
		sts:  newSTSCache(opts.MTASTSCacheSize),
	}
}

func (e *Engine) now() time.Time { return e.opts.Now() }

// Plan returns the hosts to try for req.Domain and what each connection
// needs. Errors wrap ErrNullMX, ErrNoHosts, ErrRequireTLS or a dns error;
// IsPermanent tells a bounce from a retry. Each Host's Reason, and each
// error, is one line fit for a log or a DSN.
func (e *Engine) Plan(ctx context.Context, req Request) (*Plan, error) {
	p, err := e.plan(ctx, req)
	switch {
	case err == nil:
		e.opts.Metrics.Plans.WithLabelValues("ok").Inc()
	case IsPermanent(err):
		e.opts.Metrics.Plans.WithLabelValues("permanent").Inc()
	default:
		e.opts.Metrics.Plans.WithLabelValues("temporary").Inc()
	}
	if err != nil {
		e.log.Info("no delivery plan", "domain", req.Domain, "require_tls", req.RequireTLS, "permanent", IsPermanent(err), "err", err)
	}
	return p, err
}

// candidate is one host with what the DNS said about it.
type candidate struct {
	host    Host
	dane    daneState
	skipped string // why the host cannot be used now; "" if it can
	temp    bool   // skipped for a temporary reason
	err     error  // the address lookup error, if that is why
}

type daneState int

const (
	daneNone     daneState = iota // no authenticated TLSA records
	daneUsable                    // usable TLSA records: Verify
	daneUnusable                  // TLSA records, none usable: Encrypt
)

func (e *Engine) plan(ctx context.Context, req Request) (*Plan, error) {
	domain := strings.TrimSuffix(strings.ToLower(req.Domain), ".")
	if strings.HasPrefix(domain, "[") {
		// RFC 5321 §4.1.3 address literals: Postern delivers to
		// domains only.
		return nil, permanent(fmt.Errorf("%w: %s: delivery to address literals is not supported", ErrNoHosts, truncate(req.Domain)))
	}
	if !dns.ValidName(domain) {
		return nil, permanent(fmt.Errorf("%w: invalid domain %q", ErrNoHosts, truncate(req.Domain)))
	}
	names, implicit, authMX, err := e.mx(ctx, domain)
	if err != nil {
		return nil, err
	}
	// RFC 8689 §4.2.2: "TLS-Required: No" waives DANE and MTA-STS; no
	// TLSA record is looked up (a failed lookup would only keep a host
	// out).
	optional := req.TLSOptional && !req.RequireTLS
	sts := e.mtasts(ctx, domain)
	cands := e.resolve(ctx, domain, names, authMX && !optional)
	if implicit && cands[0].skipped != "" && !cands[0].temp {
		// RFC 5321 §5.1: no MX and no address: the domain takes no mail.
		return nil, permanent(fmt.Errorf("%w: %s: no MX records, and %w", ErrNoHosts, domain, cands[0].err))
	}

	var refused []string // why hosts were left out
	var temp bool        // some host left out for a temporary reason
	var hosts []Host
	for _, c := range cands {
		if c.skipped != "" {
			refused = append(refused, c.skipped)
			temp = temp || c.temp
			continue
		}
		h := c.host
		if !e.applySTS(&h, c.dane, domain, sts) {
			refused = append(refused, h.Reason)
			continue
		}
		if optional {
			waive(&h)
		}
		// After waive: the operator's own minimum is never waived.
		e.applyMinimum(&h, domain)
		hosts = append(hosts, h)
	}
	if len(hosts) == 0 {
		err := fmt.Errorf("%w: %s: %s", ErrNoHosts, domain, strings.Join(refused, "; "))
		if temp {
			err = fmt.Errorf("%w (%w)", err, dns.ErrTemporary)
		}
		return nil, err
	}
	if req.RequireTLS {
		hosts, refused = requireTLS(hosts, refused)
		if len(hosts) == 0 {
			err := fmt.Errorf("%w: %s: neither DANE nor an enforced MTA-STS policy authenticates a host: %s", ErrRequireTLS, domain, strings.Join(refused, "; "))
			if temp {
				return nil, fmt.Errorf("%w (%w)", err, dns.ErrTemporary)
			}
			return nil, permanent(err)
		}
	}
	if len(refused) > 0 {
		e.log.Info("mail hosts left out", "domain", domain, "require_tls", req.RequireTLS, "reasons", strings.Join(refused, "; "))
	}
	return &Plan{Domain: domain, Hosts: hosts, Implicit: implicit}, nil
}

// mx returns the host names to try, best first. RFC 5321 §5.1: sort by
// preference, random order among equal preference; without MX records
// the domain itself is the one host (implicit MX).
func (e *Engine) mx(ctx context.Context, domain string) (names []string, implicit, authentic bool, err error) {
	mxs, res, err := e.opts.Resolver.LookupMX(ctx, domain)
	switch {
	case errors.Is(err, dns.ErrNoData):
		// The DANE gate for the implicit MX is the domain's own
		// address answer, checked per host in resolve.
		return []string{domain}, true, true, nil
	case errors.Is(err, dns.ErrNXDomain):
		return nil, false, false, permanent(fmt.Errorf("%w: %s: %w", ErrNoHosts, domain, err))
	case err != nil:
		return nil, false, false, fmt.Errorf("policy: %s: MX lookup: %w", domain, err)
	}
	// RFC 7505 §3: a single MX with the root as host means no mail.
	if len(mxs) == 1 && mxs[0].Host == "" {
		return nil, false, false, permanent(fmt.Errorf("%w: %s", ErrNullMX, domain))
	}
	mxs = slices.Clone(mxs)
	// Shuffle first, then sort stably by preference: equal preferences
	// keep the random order.
	for i := len(mxs) - 1; i > 0; i-- {
		j := e.opts.Rand(i + 1)
		mxs[i], mxs[j] = mxs[j], mxs[i]
	}
	slices.SortStableFunc(mxs, func(a, b dns.MX) int { return cmp.Compare(a.Pref, b.Pref) })
	seen := make(map[string]bool)
	for _, m := range mxs {
		h := strings.TrimSuffix(strings.ToLower(m.Host), ".")
		// A null MX among other records is a misconfiguration (RFC 7505
		// §3); drop it and use the others.
		if h == "" || seen[h] || !dns.ValidName(h) {
			continue
		}
		seen[h] = true
		names = append(names, h)
		if len(names) == e.opts.MaxHosts {
			break
		}
	}
	if len(names) == 0 {
		return nil, false, false, permanent(fmt.Errorf("%w: %s: no valid MX host name (%w)", ErrNoHosts, domain, dns.ErrNoData))
	}
	return names, false, res.Authentic, nil
}

// resolve looks up the addresses and, where DNSSEC allows it, the TLSA
// records of every host, concurrently; the result keeps the order of
// names.
func (e *Engine) resolve(ctx context.Context, domain string, names []string, authMX bool) []candidate {
	out := make([]candidate, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() { out[i] = e.resolveHost(ctx, domain, name, authMX) })
	}
	wg.Wait()
	return out
}

func (e *Engine) resolveHost(ctx context.Context, domain, name string, authMX bool) candidate {
	addrs, res, err := e.opts.Resolver.LookupIP(ctx, name)
	switch {
	case err != nil && len(addrs) > 0 && !authMX && errors.Is(err, dns.ErrTemporary):
		// One address family failed: deliver to the other now. Not
		// under DNSSEC, where DANE needs every address answer
		// (RFC 7672 §2.2.2).
		e.log.Info("address lookup partly failed, using the addresses found", "host", name, "err", err)
	case err != nil:
		return candidate{host: Host{Name: name}, skipped: fmt.Sprintf("%s: address lookup: %v", name, err), err: err, temp: !dns.IsNotFound(err)}
	}
	c := candidate{host: Host{
		Name:   name,
		Addrs:  addrs,
		Mode:   Opportunistic,
		Source: SourceNone,
		Reason: "opportunistic TLS: no DANE, MTA-STS or configured requirement",
	}}
	// RFC 7672 §2.2: TLSA records count only when the MX answer and the
	// host's address answer were DNSSEC-validated.
	if !authMX || !res.Authentic {
		return c
	}
	base := tlsaBaseLabel + name
	recs, tres, err := e.opts.Resolver.LookupTLSA(ctx, base)
	switch {
	case dns.IsNotFound(err):
		return c
	case err != nil:
		// RFC 7672 §2.2: a host whose TLSA lookup fails is not used.
		c.skipped, c.temp = fmt.Sprintf("%s: DANE TLSA lookup at %s failed: %v", name, base, err), true
		return c
	case !tres.Authentic:
		e.log.Debug("TLSA records not authenticated, ignored", "host", name)
		return c
	}
	usable := usableTLSA(recs)
	c.host.Source = SourceDANE
	if len(usable) == 0 {
		// RFC 7672 §2.2: TLSA records, none usable: mandatory but
		// unauthenticated TLS.
		c.dane = daneUnusable
		c.host.Mode = Encrypt
		c.host.Reason = fmt.Sprintf("DANE: TLSA records at %s are all unusable: STARTTLS required, certificate not checked", base)
		return c
	}
	c.dane = daneUsable
	c.host.Mode = Verify
	c.host.TLSA = usable
	c.host.Reason = fmt.Sprintf("DANE: %d usable TLSA record(s) at %s: certificate must match", len(usable), base)
	c.host.verify = daneVerifier(name, domain, usable, e.opts.Now)
	return c
}

// applySTS applies the MTA-STS policy to h and reports whether h may be
// used. DANE wins (RFC 8461 §2): a host with usable TLSA records is left
// as it is. In enforce mode a host whose name matches no mx pattern is
// refused (RFC 8461 §4.1), its Reason saying why; a matching host needs a
// WebPKI certificate for its name. Testing mode only logs (§5).
func (e *Engine) applySTS(h *Host, dane daneState, domain string, sts *activeSTS) bool {
	if sts == nil || dane == daneUsable {
		return true
	}
	if sts.policy.Mode != STSEnforce && h.Source == SourceNone {
		h.Reason = fmt.Sprintf("opportunistic TLS: the MTA-STS policy of %s (id %s) is in %s mode, not enforced", domain, sts.id, sts.policy.Mode)
	}
	if sts.policy.Mode == STSNone {
		return true
	}
	match := sts.policy.Match(h.Name)
	if sts.policy.Mode == STSTesting {
		// RFC 8461 §5: check as enforce mode would, report what fails,
		// deliver anyway. The connection is checked by Host.Audit.
		if !match {
			e.opts.Metrics.STSTestingFailures.WithLabelValues(auditMX).Inc()
			e.log.Warn("MTA-STS testing: host not in policy, delivering anyway", "domain", domain, "host", h.Name, "id", sts.id, "reason", auditMX)
			return true
		}
		h.audit, h.auditCount = e.webPKIVerifier(h.Name), e.opts.Metrics.STSTestingFailures
		return true
	}
	if !match {
		h.Reason = fmt.Sprintf("%s: not allowed by the MTA-STS policy of %s (id %s, enforce)", h.Name, domain, sts.id)
		e.log.Warn("MTA-STS enforce: host refused", "domain", domain, "host", h.Name, "id", sts.id)
		return false
	}
	h.Mode = Verify
	h.Source = SourceMTASTS
	h.Reason = fmt.Sprintf("MTA-STS policy of %s (id %s) in enforce mode: WebPKI certificate for %s required", domain, sts.id, h.Name)
	h.verify = e.webPKIVerifier(h.Name)
	return true
}

// applyMinimum raises h to the configured minimum for domain.
func (e *Engine) applyMinimum(h *Host, domain string) {
	min, ok := e.opts.Minimum[domain]
	if !ok {
		min, ok = e.opts.Minimum["*"]
	}
	if !ok || min <= h.Mode {
		return
	}
	h.Mode = min
	h.Source = SourceConfig
	switch min {
	case Encrypt:
		h.Reason = fmt.Sprintf("configured minimum for %s: STARTTLS required (encrypt)", domain)
		h.verify = nil
	case Verify:
		h.Reason = fmt.Sprintf("configured minimum for %s: WebPKI certificate for %s required (verify)", domain, h.Name)
		h.verify = e.webPKIVerifier(h.Name)
		h.audit = nil // verified by the same check
	}
}

// waive drops the recipient domain's requirements (DANE, MTA-STS) from
// h, for a message with "TLS-Required: No" (RFC 8689 §4.2.2): TLS when
// offered, any certificate. The configured minimum is applied after.
func waive(h *Host) {
	h.Mode, h.Source = Opportunistic, SourceNone
	h.TLSA, h.verify, h.audit = nil, nil, nil
	h.Reason = "opportunistic TLS: the message has TLS-Required: No, which waives DANE and MTA-STS"
}

// requireTLS keeps the hosts a REQUIRETLS message may go to. RFC 8689
// §4.2.1: the MX must be authenticated (DNSSEC or MTA-STS) and the
// server's certificate verified, so only hosts with Verify from DANE or
// an enforced MTA-STS policy qualify.
func requireTLS(hosts []Host, refused []string) ([]Host, []string) {
	var ok []Host
	for _, h := range hosts {
		if h.Mode == Verify && (h.Source == SourceDANE || h.Source == SourceMTASTS) {
			h.Reason += "; the message requires TLS (REQUIRETLS)"
			ok = append(ok, h)
			continue
		}
		refused = append(refused, fmt.Sprintf("%s: %s", h.Name, h.Reason))
	}
	return ok, refused
}
