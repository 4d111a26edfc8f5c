package config

import (
	"fmt"
	"math"
	"net/netip"
	"strings"
	"time"
)

// Defaults of the delivery, DNS and mail-authentication tables.
const (
	DefaultDNSTimeout              = 5 * time.Second
	DefaultDeliveryWorkers         = 16
	DefaultRetryFirst              = time.Minute
	DefaultRetryMax                = time.Hour
	DefaultGiveUp                  = 5 * 24 * time.Hour
	DefaultDelayWarning            = 4 * time.Hour
	DefaultPoolIdleTimeout         = 30 * time.Second
	DefaultMaxMessagesPerConn      = 100
	DefaultMaxConnsPerHost         = 10
	DefaultMaxIdlePerHost          = 10
	DefaultMaxDKIMSignatures       = 5
	DirectoryFile                  = "file"
	DirectoryPostgres              = "postgres"
	TLSNone, TLSEncrypt, TLSVerify = "none", "encrypt", "verify"
)

// DNS is the [dns] table: the resolver delivery and mail authentication use.
type DNS struct {
	// Servers are "ip:port" of recursive resolvers; empty means the
	// nameservers of /etc/resolv.conf.
	Servers []string
	// TrustAD makes Postern believe the resolvers' DNSSEC validation
	// (the AD bit). DANE needs it; set it only for a validating resolver
	// on this host or a network you trust.
	TrustAD bool
	// Timeout bounds each query.
	Timeout time.Duration
}

// Delivery is the [delivery] table: the queue runner and outbound SMTP.
type Delivery struct {
	// Workers is how many deliveries run at once.
	Workers int
	// RetryFirst is the wait before the first retry of a temporary
	// failure; each later wait doubles, up to RetryMax.
	RetryFirst, RetryMax time.Duration
	// GiveUp is the age at which a message still failing temporarily is
	// bounced.
	GiveUp time.Duration
	// DelayWarning is the age at which the sender is told once that a
	// message is delayed; 0 disables the warning.
	DelayWarning time.Duration
	// IdleTimeout closes an idle pooled outbound connection.
	IdleTimeout time.Duration
	// MaxMessagesPerConnection caps the messages sent on one connection.
	MaxMessagesPerConnection int
	// MaxConnectionsPerHost caps concurrent connections to one host.
	MaxConnectionsPerHost int
	// MaxIdlePerHost caps the idle connections kept per host.
	MaxIdlePerHost int
	// TLSMinimum maps a recipient domain (or "*" for every domain) to
	// the least TLS its delivery needs: TLSNone, TLSEncrypt or TLSVerify.
	TLSMinimum map[string]string
	// CAFile is a PEM bundle of roots outbound delivery trusts besides
	// the system roots (WebPKI checks of MX hosts and MTA-STS policy
	// hosts): for a private CA; "" means the system roots only.
	CAFile string
	// DirectLocal writes a message whose recipients are all local
	// mailboxes straight into them before the 250, without the spool
	// (delivery.Direct); false spools every message.
	DirectLocal bool
}

// Smarthost is the [smarthost] table: a relay all (or some) mail goes through.
type Smarthost struct {
	// Address is host:port of the relay; "" delivers directly (MX).
	Address string
	// ImplicitTLS is true for a relay on port 465; false means STARTTLS,
	// which is then required.
	ImplicitTLS bool
	// Username and PasswordFile are the AUTH PLAIN credentials; the
	// password is read from the file (first line).
	Username     string
	PasswordFile string
	// Domains limits the relay to these recipient domains; empty means all.
	Domains []string
	// CAFile is a PEM bundle of roots the relay's certificate may chain
	// to besides the system roots; "" means Delivery.CAFile's.
	CAFile string
}

// LMTP is the [lmtp] table: local delivery to a mailbox server instead of
// Maildir.
type LMTP struct {
	// Network is "unix" or "tcp"; Address is a socket path or host:port.
	// An empty Address keeps Maildir delivery.
	Network, Address string
}

// MailAuth is the [mail_auth] table: SPF, DKIM and DMARC on the mx
// listeners, and DKIM signing on submission.
type MailAuth struct {
	// Check turns SPF, DKIM and DMARC evaluation on mx listeners on.
	Check bool
	// ReportOnly records results in Authentication-Results but never
	// refuses or quarantines by DMARC policy.
	ReportOnly bool
	// AuthservID is the authserv-id of our Authentication-Results
	// headers (RFC 8601 §2.5); default the hostname.
	AuthservID string
	// MaxDKIMSignatures is how many signatures of a message are verified.
	MaxDKIMSignatures int
	// Sign turns DKIM signing of submitted mail on (for From domains
	// that have a key in data_dir/dkim or in DKIMKeys).
	Sign bool
	// DKIMKeys are signing keys kept outside data_dir/dkim.
	DKIMKeys []DKIMKey
}

// DKIMKey is one [[mail_auth.dkim_key]]: a signing key file for a domain
// and selector.
type DKIMKey struct {
	Domain, Selector, KeyFile string
}

// Directory is the [directory] table: where users live.
type Directory struct {
	// Backend is DirectoryFile (data_dir/users.json) or DirectoryPostgres.
	Backend string
	// PostgresDSNFile holds the PostgreSQL connection string (first line),
	// so that the password stays out of the configuration file.
	PostgresDSNFile string
}

func defaultDelivery() Delivery {
	return Delivery{
		Workers:                  DefaultDeliveryWorkers,
		RetryFirst:               DefaultRetryFirst,
		RetryMax:                 DefaultRetryMax,
		GiveUp:                   DefaultGiveUp,
		DelayWarning:             DefaultDelayWarning,
		IdleTimeout:              DefaultPoolIdleTimeout,
		MaxMessagesPerConnection: DefaultMaxMessagesPerConn,
		MaxConnectionsPerHost:    DefaultMaxConnsPerHost,
		MaxIdlePerHost:           DefaultMaxIdlePerHost,
		TLSMinimum:               map[string]string{},
		DirectLocal:              true,
	}
}

func defaultMailAuth() MailAuth {
	return MailAuth{Check: true, Sign: true, MaxDKIMSignatures: DefaultMaxDKIMSignatures}
}

func (d *decoder) dns(t map[string]any, dir string, c *DNS) {
	if t == nil {
		return
	}
	d.unknown(t, []string{"dns"}, "servers", "trust_ad", "timeout")
	d.strs(t, "servers", "dns.servers", &c.Servers)
	d.boolean(t, "trust_ad", "dns.trust_ad", &c.TrustAD)
	if du, ok := d.duration(t, "timeout", "dns.timeout"); ok {
		c.Timeout = du
	}
}

func (d *decoder) delivery(t map[string]any, dir string, c *Delivery) {
	if t == nil {
		return
	}
	d.unknown(t, []string{"delivery"}, "workers", "retry_first", "retry_max", "give_up", "delay_warning",
		"idle_timeout", "max_messages_per_connection", "max_connections_per_host", "max_idle_per_host", "tls_minimum", "ca_file", "direct_local")
	d.path(t, "ca_file", "delivery.ca_file", dir, &c.CAFile)
	d.boolean(t, "direct_local", "delivery.direct_local", &c.DirectLocal)
	d.ints(t, "delivery.", math.MinInt32, math.MaxInt32, []field[int]{
		{"workers", &c.Workers},
		{"max_messages_per_connection", &c.MaxMessagesPerConnection},
		{"max_connections_per_host", &c.MaxConnectionsPerHost},
		{"max_idle_per_host", &c.MaxIdlePerHost},
	})
	d.durations(t, "delivery.", []field[time.Duration]{
		{"retry_first", &c.RetryFirst},
		{"retry_max", &c.RetryMax},
		{"give_up", &c.GiveUp},
		{"delay_warning", &c.DelayWarning},
		{"idle_timeout", &c.IdleTimeout},
	})
	d.strTable(t, "delivery", "tls_minimum", "a string", func(dom, s string) {
		c.TLSMinimum[lower(dom)] = s
	})
}

func (d *decoder) smarthost(t map[string]any, dir string, c *Smarthost) {
	if t == nil {
		return
	}
	d.unknown(t, []string{"smarthost"}, "address", "implicit_tls", "username", "password_file", "domains", "ca_file")
	d.path(t, "ca_file", "smarthost.ca_file", dir, &c.CAFile)
	d.str(t, "address", "smarthost.address", &c.Address)
	d.boolean(t, "implicit_tls", "smarthost.implicit_tls", &c.ImplicitTLS)
	d.str(t, "username", "smarthost.username", &c.Username)
	d.path(t, "password_file", "smarthost.password_file", dir, &c.PasswordFile)
	if d.strs(t, "domains", "smarthost.domains", &c.Domains) {
		for i, s := range c.Domains {
			c.Domains[i] = lower(s)
		}
	}
}

func (d *decoder) lmtp(t map[string]any, dir string, c *LMTP) {
	if t == nil {
		return
	}
	d.unknown(t, []string{"lmtp"}, "network", "address")
	d.str(t, "network", "lmtp.network", &c.Network)
	if d.str(t, "address", "lmtp.address", &c.Address) && c.Network == "unix" {
		c.Address = resolve(dir, c.Address)
	}
}

func (d *decoder) mailAuth(t map[string]any, dir string, c *MailAuth) {
	if t == nil {
		return
	}
	d.unknown(t, []string{"mail_auth"}, "check", "report_only", "authserv_id", "max_dkim_signatures", "sign", "dkim_key")
	d.boolean(t, "check", "mail_auth.check", &c.Check)
	d.boolean(t, "report_only", "mail_auth.report_only", &c.ReportOnly)
	d.boolean(t, "sign", "mail_auth.sign", &c.Sign)
	if d.str(t, "authserv_id", "mail_auth.authserv_id", &c.AuthservID) {
		c.AuthservID = lower(c.AuthservID)
	}
	if n, ok := d.integer(t, "max_dkim_signatures", "mail_auth.max_dkim_signatures", 0, 100); ok {
		c.MaxDKIMSignatures = int(n)
	}
	keys, _ := t["dkim_key"].([]map[string]any)
	if v, ok := t["dkim_key"]; ok && keys == nil {
		if arr, isArr := v.([]any); isArr {
			for _, e := range arr {
				if m, isMap := e.(map[string]any); isMap {
					keys = append(keys, m)
				}
			}
		}
		if len(keys) == 0 {
			d.fail("mail_auth.dkim_key", "expected an array of tables ([[mail_auth.dkim_key]]), got %s", describe(v))
		}
	}
	for i, kt := range keys {
		k := fmt.Sprintf("mail_auth.dkim_key[%d]", i)
		d.unknown(kt, []string{"mail_auth", "dkim_key"}, "domain", "selector", "key_file")
		var dk DKIMKey
		d.str(kt, "domain", k+".domain", &dk.Domain)
		dk.Domain = lower(dk.Domain)
		d.str(kt, "selector", k+".selector", &dk.Selector)
		if d.str(kt, "key_file", k+".key_file", &dk.KeyFile) {
			dk.KeyFile = resolveKey(dir, dk.KeyFile) // a path, or a pkcs11: URI
		}
		c.DKIMKeys = append(c.DKIMKeys, dk)
	}
}

func (d *decoder) directory(t map[string]any, dir string, c *Directory) {
	if t == nil {
		return
	}
	d.unknown(t, []string{"directory"}, "backend", "postgres_dsn_file")
	d.str(t, "backend", "directory.backend", &c.Backend)
	d.path(t, "postgres_dsn_file", "directory.postgres_dsn_file", dir, &c.PostgresDSNFile)
}

// validateDelivery checks the [dns], [delivery], [smarthost], [lmtp],
// [mail_auth] and [directory] tables.
func (c *Config) validateDelivery(p *problems) {
	for i, s := range c.DNS.Servers {
		if _, err := netip.ParseAddrPort(s); err != nil {
			p.addf(fmt.Sprintf("dns.servers[%d]", i), "want ip:port, got %q", s)
		}
	}
	if c.DNS.Timeout <= 0 {
		p.addf("dns.timeout", "must be greater than 0")
	}
	dl := c.Delivery
	for _, f := range []struct {
		key string
		n   int
	}{
		{"delivery.workers", dl.Workers},
		{"delivery.max_messages_per_connection", dl.MaxMessagesPerConnection},
		{"delivery.max_connections_per_host", dl.MaxConnectionsPerHost},
	} {
		if f.n < 1 {
			p.addf(f.key, "must be at least 1, got %d", f.n)
		}
	}
	if dl.MaxIdlePerHost < 0 {
		p.addf("delivery.max_idle_per_host", "must be 0 or more, got %d", dl.MaxIdlePerHost)
	}
	for _, f := range []struct {
		key string
		d   time.Duration
	}{
		{"delivery.retry_first", dl.RetryFirst},
		{"delivery.retry_max", dl.RetryMax},
		{"delivery.give_up", dl.GiveUp},
		{"delivery.idle_timeout", dl.IdleTimeout},
	} {
		if f.d <= 0 {
			p.addf(f.key, "must be greater than 0")
		}
	}
	if dl.RetryMax < dl.RetryFirst {
		p.addf("delivery.retry_max", "shorter than retry_first (%v < %v)", dl.RetryMax, dl.RetryFirst)
	}
	if dl.DelayWarning < 0 {
		p.addf("delivery.delay_warning", "must be 0 (off) or more")
	}
	for _, dom := range sortedKeys(dl.TLSMinimum) {
		k := keyOf("delivery", "tls_minimum", dom)
		if dom != "*" {
			if err := checkDNSName(dom); err != nil {
				p.addf(k, "%v", err)
			}
		}
		switch dl.TLSMinimum[dom] {
		case TLSNone, TLSEncrypt, TLSVerify:
		default:
			p.addf(k, "want %q, %q or %q, got %q", TLSNone, TLSEncrypt, TLSVerify, dl.TLSMinimum[dom])
		}
	}
	if sh := c.Smarthost; sh.Address != "" {
		if err := checkListenAddress(sh.Address); err != nil || strings.HasPrefix(sh.Address, ":") {
			p.addf("smarthost.address", "want host:port, got %q", sh.Address)
		}
		if (sh.Username == "") != (sh.PasswordFile == "") {
			p.addf("smarthost.username", "username and password_file go together")
		}
		for i, dom := range sh.Domains {
			if err := checkDNSName(dom); err != nil {
				p.addf(fmt.Sprintf("smarthost.domains[%d]", i), "%v", err)
			}
		}
	} else if sh.Username != "" || sh.PasswordFile != "" || len(sh.Domains) > 0 || sh.ImplicitTLS || sh.CAFile != "" {
		p.addf("smarthost.address", "required when other smarthost keys are set")
	}
	if l := c.LMTP; l.Address != "" || l.Network != "" {
		switch l.Network {
		case "unix":
		case "tcp":
			if err := checkListenAddress(l.Address); err != nil {
				p.addf("lmtp.address", "%v", err)
			}
		default:
			p.addf("lmtp.network", "want \"unix\" or \"tcp\", got %q", l.Network)
		}
		if l.Address == "" {
			p.addf("lmtp.address", "required with lmtp.network")
		}
	}
	for i, k := range c.MailAuth.DKIMKeys {
		key := fmt.Sprintf("mail_auth.dkim_key[%d]", i)
		if err := checkDNSName(k.Domain); err != nil {
			p.addf(key+".domain", "%v", err)
		}
		if k.Selector == "" || strings.ContainsAny(k.Selector, " ;=\"/") {
			p.addf(key+".selector", "want a DNS label like \"s1\", got %q", k.Selector)
		}
		if k.KeyFile == "" {
			p.addf(key+".key_file", "required")
		}
	}
	switch c.Directory.Backend {
	case DirectoryFile:
		if c.Directory.PostgresDSNFile != "" {
			p.addf("directory.postgres_dsn_file", "only with backend = %q", DirectoryPostgres)
		}
	case DirectoryPostgres:
		if c.Directory.PostgresDSNFile == "" {
			p.addf("directory.postgres_dsn_file", "required with backend = %q", DirectoryPostgres)
		}
	default:
		p.addf("directory.backend", "want %q or %q, got %q", DirectoryFile, DirectoryPostgres, c.Directory.Backend)
	}
}
