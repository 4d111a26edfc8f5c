package server

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"postern/internal/acme"
	"postern/internal/admission"
	"postern/internal/admission/redisstore"
	"postern/internal/autoconfig"
	"postern/internal/config"
	"postern/internal/delivery/policy"
	"postern/internal/delivery/remote"
	"postern/internal/dns"
	"postern/internal/mailauth"
	"postern/internal/oauth"
	"postern/internal/pkcs11"
	"postern/internal/queue"
	"postern/internal/sasl"
	"postern/internal/smtpd"
	"postern/internal/spool"
	"postern/internal/srs"
	"postern/internal/tlsconf"
	"postern/internal/userdb"
)

// The converters: each turns the resolved configuration (and the secrets
// it names) into the options of one package, and nothing else decides
// those options. config resolves every default and says "off" with 0, as
// the packages' options do, so a converter copies values across and never
// translates: a new default, or a new meaning of 0, belongs in
// internal/config. The converters read no file and start nothing, so a
// reload can run them on a new Config and compare what they return with
// what is running. Fields that come from elsewhere (a logger, a store, a
// clock) are left zero here for the wiring to set; options_test.go checks
// that every other field follows the configuration.

// gateOptions converts [admission] and the listeners' allow and deny
// lists into the Gate's options.
func gateOptions(cfg *config.Config) admission.GateOptions {
	x := cfg.Admission
	o := admission.GateOptions{
		Listeners:         map[string]admission.Listener{},
		Trusted:           x.Trusted,
		MaxConnsPerIP:     x.MaxConnsPerIP,
		MaxConnsPerPrefix: x.MaxConnsPerPrefix,
		MaxConnsPerV6Site: x.MaxConnsPerV6Site,
		IPRate:            admission.Rate{PerSecond: x.IPRate, Burst: x.IPBurst},
		PrefixRate:        admission.Rate{PerSecond: x.PrefixRate, Burst: x.PrefixBurst},
	}
	// Every listener does TLS (mx at STARTTLS): each refusal saves one.
	for _, l := range cfg.Listeners {
		o.Listeners[l.Name] = admission.Listener{Allow: l.Allow, Deny: l.Deny}
	}
	return o
}

// abuseOptions converts [abuse] (and admission.trusted) into the engine's
// options; the wiring sets Logger.
func abuseOptions(cfg *config.Config) admission.AbuseOptions {
	x := cfg.Abuse
	return admission.AbuseOptions{
		Trusted:           cfg.Admission.Trusted,
		Window:            x.Window,
		IPBanAfter:        x.IPBanAfter,
		PrefixBanAfter:    x.PrefixBanAfter,
		PrefixBanIPs:      x.PrefixBanIPs,
		StuffingUsers:     x.StuffingUsernames,
		UserThrottleAfter: x.UserThrottleAfter,
		DistributedIPs:    x.DistributedIPs,
		FailDelay:         x.FailDelay,
		MaxFailDelay:      x.MaxFailDelay,
		BanDuration:       x.BanDuration,
		MaxBan:            x.MaxBan,
		AlertStrikes:      x.AlertStrikes,
		GoodIPTTL:         x.GoodIPTTL,
	}
}

// limiterOptions converts [send_limits] into the Limiter's options; the
// wiring sets Logger.
func limiterOptions(cfg *config.Config) admission.LimiterOptions {
	sl := cfg.SendLimits
	o := admission.LimiterOptions{Default: sendLimits(sl.UserSendLimits)}
	if len(sl.Users) > 0 {
		o.Users = make(map[string]admission.SendLimits, len(sl.Users))
		for u, l := range sl.Users {
			o.Users[u] = sendLimits(l)
		}
	}
	return o
}

// sendLimits converts one user's [send_limits] into the Limiter's.
func sendLimits(l config.UserSendLimits) admission.SendLimits {
	return admission.SendLimits{MessagesPerHour: l.MessagesPerHour, RecipientsPerHour: l.RecipientsPerHour,
		Sessions: l.Sessions, Hold: l.OverLimit == config.OverLimitHold}
}

// redisOptions converts [redis], with its password, into the options of
// the Redis client and store; the wiring sets Client.
func redisOptions(cfg *config.Config, sec config.Secrets) redisstore.Options {
	r := cfg.Redis
	return redisstore.Options{Addr: r.Address, Username: r.Username, Password: sec.RedisPassword, DB: r.DB, Prefix: r.KeyPrefix}
}

// limitsOf converts [limits] into the sessions' limits.
func limitsOf(cfg *config.Config) smtpd.Limits {
	l := cfg.Limits
	return smtpd.Limits{
		MaxMessageSize:  l.MaxMessageSize,
		MaxRecipients:   l.MaxRecipients,
		MaxErrors:       l.MaxErrors,
		ErrorDelayAfter: l.ErrorDelayAfter,
		ErrorDelay:      l.ErrorDelay,
		CommandTimeout:  l.CommandTimeout,
		DataTimeout:     l.DataTimeout,
		DataTimeLimit:   l.DataTimeLimit,
		MaxHeaderSize:   int(l.MaxHeaderSize),
		AuthFailDelay:   l.AuthFailDelay,
	}
}

// dataBudgetOptions converts limits.max_data_in_flight and
// max_data_in_memory, with the shares of clients that did not log in,
// into the bounds of the DataBudget every listener's sessions share.
func dataBudgetOptions(cfg *config.Config) smtpd.DataBudgetOptions {
	l := cfg.Limits
	perAddr, perNet := l.DataShares()
	return smtpd.DataBudgetOptions{InFlight: l.MaxDataInFlight, Memory: l.MaxDataInMemory, PerAddress: perAddr, PerNetwork: perNet}
}

// poolOptions converts [delivery]'s connection keys into the outbound
// pool's bounds.
func poolOptions(cfg *config.Config) remote.PoolOptions {
	d := cfg.Delivery
	return remote.PoolOptions{
		MaxIdlePerHost:     d.MaxIdlePerHost,
		IdleTimeout:        d.IdleTimeout,
		MaxMessagesPerConn: d.MaxMessagesPerConnection,
		MaxConnsPerHost:    d.MaxConnectionsPerHost,
	}
}

// smarthostOf converts [smarthost], with its password, into the relay of
// outbound delivery; nil without smarthost.address. The wiring sets
// RootCAs, from smarthost.ca_file or delivery.ca_file.
func smarthostOf(cfg *config.Config, sec config.Secrets) *remote.Smarthost {
	sh := cfg.Smarthost
	if sh.Address == "" {
		return nil
	}
	return &remote.Smarthost{Address: sh.Address, ImplicitTLS: sh.ImplicitTLS, Username: sh.Username,
		Password: sec.SmarthostPassword, Domains: sh.Domains}
}

// usersOptions converts [auth]'s password keys into the user directory's
// options; the wiring sets Logger and, for the users file, Owner.
func usersOptions(cfg *config.Config) userdb.Options {
	a := cfg.Auth
	return userdb.Options{
		CacheTTL:        a.CacheTTL,
		SCRAMIterations: a.SCRAMIterations,
		Argon2:          userdb.Argon2Params{Time: a.Argon2Time, MemoryKiB: a.Argon2MemoryKiB, Threads: a.Argon2Threads},
	}
}

// certsOptions converts [tls] (its certificate and key files, or the
// self-signed one) into the options of the certificates served; the
// wiring sets Check.Roots (from tls.ca_file), AllowBrokenChain (a flag of
// serve), Logger and Keys (the PKCS#11 tokens).
func certsOptions(cfg *config.Config) tlsconf.Options {
	o := tlsconf.Options{Check: tlsconf.CheckOptions{Hostnames: []string{cfg.Hostname}, AllowSelfSigned: cfg.TLS.SelfSigned}}
	for _, f := range cfg.TLSCertificateFiles() {
		o.Pairs = append(o.Pairs, tlsconf.Pair{CertFile: f.CertFile, KeyFile: f.KeyFile})
	}
	if len(o.Pairs) == 0 {
		// Certificates come later (ACME, through Certs.Set).
		o.Check.Hostnames = nil
	}
	return o
}

// tlsPolicy converts [tls] into the TLS policy of every listener;
// runTLS turns session tickets off per listener (tls_tickets).
func tlsPolicy(cfg *config.Config) tlsconf.Policy {
	return tlsconf.Policy{MinVersion: cfg.TLS.MinVersion}
}

// ticketOptions converts tls.ticket_rotation into the ticket key
// rotator's options; the wiring sets Store (memory, or the Redis of
// [redis]) and Logger.
func ticketOptions(cfg *config.Config) tlsconf.TicketOptions {
	return tlsconf.TicketOptions{Rotation: cfg.TLS.TicketRotation}
}

// checkerOptions converts [mail_auth] into the options of the SPF, DKIM
// and DMARC checks of mx listeners; the wiring sets Resolver,
// IsLocalDomain and Logger.
func checkerOptions(cfg *config.Config) mailauth.CheckerOptions {
	ma := cfg.MailAuth
	return mailauth.CheckerOptions{Hostname: ma.AuthservID, ReportOnly: ma.ReportOnly, MaxSignatures: ma.MaxDKIMSignatures}
}

// jwtOf converts [oauth] into the check of JWT access tokens against the
// issuer's keys (jwks_url or jwks_file).
func jwtOf(cfg *config.Config) *oauth.JWT {
	o := cfg.OAuth
	return &oauth.JWT{JWKSURL: o.JWKSURL, JWKSFile: o.JWKSFile, Issuer: o.Issuer, Audience: o.Audience,
		UserClaim: o.UserClaim, Leeway: o.Leeway}
}

// introspectionOf converts [oauth], with its client secret, into the
// check of opaque access tokens by introspection (RFC 7662).
func introspectionOf(cfg *config.Config, sec config.Secrets) *oauth.Introspection {
	o := cfg.OAuth
	return &oauth.Introspection{Endpoint: o.IntrospectionURL, ClientID: o.ClientID, ClientSecret: sec.OAuthClientSecret,
		UserClaim: o.UserClaim, Issuer: o.Issuer, Audience: o.Audience}
}

// acmeOptions converts [acme] into the options of the certificate
// manager; the wiring sets HTTPClient (with acme.ca_roots_file), Install
// and Logger.
func acmeOptions(cfg *config.Config) acme.Options {
	a := cfg.ACME
	o := acme.Options{
		DirectoryURL: a.DirectoryURL,
		Email:        a.Email,
		Hostnames:    a.Hostnames,
		Challenge:    acme.Challenge(a.Challenge),
		Dir:          cfg.ACMEDir(),
		RenewBefore:  a.RenewBefore,
	}
	if a.DNSHook != "" {
		o.DNSHook = acme.CommandHook{Path: a.DNSHook}
	}
	return o
}

// pkcs11Options converts [pkcs11] into the options of the PKCS#11 token
// access; PIN files are read as every secret file is
// (config.ReadSecret). The wiring sets Logger.
func pkcs11Options(cfg *config.Config) pkcs11.Options {
	p := cfg.PKCS11
	return pkcs11.Options{Module: p.Module, PINFile: p.PINFile, ReadSecret: config.ReadSecret, Timeout: p.Timeout}
}

// screenOptions converts a listener's greet_delay, dnsbl and
// dnsbl_threshold into the checks an mx listener makes before its
// greeting; nil when it makes none. The wiring sets Resolver and Passed.
func screenOptions(lc config.Listener) *smtpd.Screen {
	if lc.Role != config.RoleMX || (lc.GreetDelay <= 0 && len(lc.DNSBL) == 0) {
		return nil
	}
	sc := &smtpd.Screen{GreetDelay: lc.GreetDelay, DNSBLThreshold: lc.DNSBLThreshold}
	for _, z := range lc.DNSBL {
		sc.DNSBL = append(sc.DNSBL, smtpd.DNSBLZone{Zone: z.Zone, Weight: z.Weight})
	}
	return sc
}

// dnsConfig converts [dns] into the resolver's configuration; the wiring
// sets CacheSize.
func dnsConfig(cfg *config.Config) dns.Config {
	return dns.Config{Servers: cfg.DNS.Servers, Timeout: cfg.DNS.Timeout, TrustAD: cfg.DNS.TrustAD}
}

// retryJitter spreads each retry by up to ±20% (no key sets it), so that
// messages deferred together are not retried in lockstep.
const retryJitter = 0.2

// retryPolicy converts [delivery]'s retry keys into the queue's retry
// schedule.
func retryPolicy(cfg *config.Config) queue.RetryPolicy {
	d := cfg.Delivery
	return queue.RetryPolicy{First: d.RetryFirst, Max: d.RetryMax, GiveUp: d.GiveUp, DelayWarning: d.DelayWarning, Jitter: retryJitter}
}

// spoolOptions converts data_dir and [spool] into the spool's options;
// the wiring sets Logger.
func spoolOptions(cfg *config.Config) spool.Options {
	return spool.Options{Dir: cfg.SpoolDir(), SegmentSize: cfg.Spool.SegmentSize}
}

// autoconfigOptions turns the configuration into what internal/autoconfig
// serves: the local domains, the first submissions and submission
// listeners (port and mechanisms) at hostname, and [autoconfig]'s IMAP
// server. The wiring sets Logger.
func autoconfigOptions(cfg *config.Config) autoconfig.Options {
	o := autoconfig.Options{Domains: cfg.LocalDomains}
	for _, l := range cfg.Listeners {
		_, p, err := net.SplitHostPort(l.Address)
		port, perr := strconv.Atoi(p)
		if err != nil || perr != nil {
			continue
		}
		e := &autoconfig.Endpoint{Host: cfg.Hostname, Port: port, Mechanisms: l.AuthMechanisms}
		switch {
		case l.Role == config.RoleSubmissions && o.Submissions == nil:
			o.Submissions = e
		case l.Role == config.RoleSubmission && o.Submission == nil:
			o.Submission = e
		}
	}
	if a := cfg.Autoconfig; a.IMAPHost != "" {
		o.IMAP = &autoconfig.Endpoint{Host: a.IMAPHost, Port: a.IMAPPort}
	}
	return o
}

// directoryConfig converts the local domains, [aliases], [send_as] and
// postmaster into what the user Directory needs.
func directoryConfig(cfg *config.Config) userdb.DirectoryConfig {
	return userdb.DirectoryConfig{
		LocalDomains: cfg.LocalDomains,
		Aliases:      cfg.Aliases,
		SendAs:       sendAsGrants(cfg),
		Postmaster:   cfg.Postmaster,
	}
}

// sendAsGrants converts [send_as] into the directory's grants (a part of
// directoryConfig).
func sendAsGrants(cfg *config.Config) map[string]userdb.SendAsGrant {
	out := make(map[string]userdb.SendAsGrant, len(cfg.SendAs))
	for user, g := range cfg.SendAs {
		out[user] = userdb.SendAsGrant{Addresses: g.Addresses, Domains: g.Domains}
	}
	return out
}

// plannerOptions converts delivery.tls_minimum into the delivery policy
// engine's options; the wiring sets Resolver, Roots (with
// delivery.ca_file) and Logger.
func plannerOptions(cfg *config.Config) (policy.Options, error) {
	min := make(map[string]policy.Mode, len(cfg.Delivery.TLSMinimum))
	for dom, s := range cfg.Delivery.TLSMinimum {
		m, err := policy.ParseMode(s)
		if err != nil {
			return policy.Options{}, fmt.Errorf("delivery.tls_minimum: %w", err)
		}
		min[dom] = m
	}
	return policy.Options{Minimum: min}, nil
}

// mechanismsOf converts a listener's auth_mechanisms and [auth] into its
// SASL mechanisms; the wiring (authSetup.mechanisms) sets what checks the
// credentials: Check, Secrets, Tokens, Users, ServerCertificate and
// MockKey.
func mechanismsOf(cfg *config.Config, lc config.Listener) *sasl.Mechanisms {
	m := &sasl.Mechanisms{Enabled: lc.AuthMechanisms, Hostname: cfg.Hostname, SCRAMIterations: cfg.Auth.SCRAMIterations}
	if len(cfg.Auth.CertificateMap) > 0 {
		m.Certs = sasl.CertMap(cfg.Auth.CertificateMap)
	}
	if req := cfg.Auth.RequireClientCertificate; len(req) > 0 {
		m.RequireCert = func(user string) bool {
			for _, u := range req {
				if strings.EqualFold(u, user) {
					return true
				}
			}
			return false
		}
	}
	return m
}

// srsOptions converts srs.max_age_days into the rewriter's options; the
// secrets are read by newForwarder (delivery.go).
func srsOptions(cfg *config.Config) srs.Options {
	return srs.Options{MaxAge: time.Duration(cfg.SRS.MaxAgeDays) * 24 * time.Hour}
}
