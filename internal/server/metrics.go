package server

import (
	"github.com/prometheus/client_golang/prometheus"

	"postern/internal/acme"
	"postern/internal/admission"
	"postern/internal/autoconfig"
	"postern/internal/config"
	"postern/internal/delivery/policy"
	"postern/internal/delivery/remote"
	"postern/internal/mailauth"
	"postern/internal/metrics"
	"postern/internal/pkcs11"
	"postern/internal/queue"
	"postern/internal/spool"
	"postern/internal/tlsconf"
)

// registerMetrics registers on reg, once per process, the metrics of
// what cfg turns on: the core, the spool and the queue, TLS, the delivery policy and
// the admission gate always; the abuse engine, mail authentication,
// DKIM signing (signing: a key was loaded), the checks before the
// greeting, the PROXY protocol, mail client autoconfiguration, keys in
// PKCS#11 tokens, milters and ACME only with their features, so
// that a server exports no metric of a feature it does not run. It
// returns the metrics serve hands to outbound delivery, the queue runner
// and ACME (nil without ACME).
func registerMetrics(reg prometheus.Registerer, cfg *config.Config, signing bool) featureMetrics {
	var names []string
	screen, proxy := false, false
	for _, lc := range cfg.Listeners {
		names = append(names, lc.Name)
		screen = screen || (lc.Role == config.RoleMX && (lc.GreetDelay > 0 || len(lc.DNSBL) > 0))
		proxy = proxy || lc.ProxyProtocol
	}
	metrics.RegisterCore(reg, names)
	if signing {
		metrics.RegisterDKIMSign(reg)
	}
	if screen {
		metrics.RegisterScreen(reg)
	}
	if proxy {
		metrics.RegisterProxy(reg)
	}
	if len(cfg.Milters) > 0 {
		var defaults [][3]string
		for _, lc := range cfg.Listeners {
			for _, m := range cfg.MiltersFor(lc.Role) {
				defaults = append(defaults, [3]string{lc.Name, m.Name, m.DefaultAction})
			}
		}
		metrics.RegisterMilters(reg, defaults)
	}
	fm := featureMetrics{remote: remote.NewMetrics(reg), queue: queue.NewMetrics(reg)}
	if cfg.ACME.Enabled {
		fm.acme = acme.NewMetrics(reg)
	}
	return fm
}

// partMetrics are the metrics of the parts serve builds before it
// knows the features on (the gate, the send limits, the abuse engine,
// the spool, the certificates, the delivery policy, mail client
// autoconfiguration, the PKCS#11 tokens and the checks of mail
// authentication so far), made once per process by newPartMetrics. The
// zero value registers nothing: each part then counts into a set of its
// own (check, tests).
type partMetrics struct {
	admission *admission.Metrics
	abuse     *admission.AbuseMetrics // nil when [abuse] enabled = false
	spool     *spool.Metrics
	tls       *tlsconf.Metrics
	policy    *policy.Metrics        // every planner a reload builds counts into it
	autoconf  *autoconfig.Metrics    // nil when [autoconfig] enabled = false
	pkcs11    *pkcs11.Metrics        // nil without a key in a PKCS#11 token
	mailauth  *mailauth.CheckMetrics // nil when [mail_auth] check = false
}

// newPartMetrics registers on reg, once per process, the metrics of the
// parts serve builds first (see registerMetrics): the admission gate's,
// the send limits', the spool's, the certificates' and the delivery
// policy's always, the abuse engine's with [abuse], autoconfiguration's
// with [autoconfig], the PKCS#11 keys' when a key is in a token, mail
// authentication's with [mail_auth] check.
func newPartMetrics(reg prometheus.Registerer, cfg *config.Config) partMetrics {
	m := partMetrics{admission: admission.NewMetrics(reg), spool: spool.NewMetrics(reg),
		tls: tlsconf.NewMetrics(reg), policy: policy.NewMetrics(reg)}
	if cfg.Abuse.Enabled {
		m.abuse = admission.NewAbuseMetrics(reg)
	}
	if cfg.Autoconfig.Enabled {
		m.autoconf = autoconfig.NewMetrics(reg)
	}
	if cfg.UsesPKCS11() {
		m.pkcs11 = pkcs11.NewMetrics(reg)
	}
	if cfg.MailAuth.Check {
		m.mailauth = mailauth.NewCheckMetrics(reg)
	}
	return m
}

// featureMetrics are the metrics of the parts serve makes that count
// into a set of their own (registered by registerMetrics).
type featureMetrics struct {
	remote *remote.Metrics
	queue  *queue.Metrics
	acme   *acme.Metrics // nil without ACME
}
