package config

// The effective configuration as TOML, for `postern config`: every key
// with the value the server uses (as postconf prints), only the keys
// whose value differs from the default (postconf -n), or the defaults
// (postconf -d). What is printed loads back into the same Config.

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"reflect"
	"time"

	"github.com/BurntSushi/toml"
)

// Defaults returns the configuration of an empty file: every default,
// the host name taken from the system, not validated (an empty file
// lacks a certificate).
func Defaults() *Config { return defaults(os.Hostname) }

func defaults(hostname func() (string, error)) *Config {
	d := &decoder{bad: map[string]bool{}}
	dir, _ := os.Getwd()
	return d.config(map[string]any{}, dir, hostname)
}

// WriteTOML writes c as TOML: every key, defaults included, with the
// value in effect (durations as "1h0m0s", sizes in bytes, paths
// resolved, derived values such as postmaster filled in). With base not
// nil, only the keys whose value differs from base's are written (an
// array of tables, such as [[listener]], whole). [acme] and
// [autoconfig], which are on when present, are written only when on.
func (c *Config) WriteTOML(w io.Writer, base *Config) error {
	tree := c.tree()
	if base != nil {
		tree = diff(tree, base.tree())
	}
	var b bytes.Buffer
	enc := toml.NewEncoder(&b)
	enc.Indent = ""
	if err := enc.Encode(tree); err != nil {
		return fmt.Errorf("config: print: %w", err)
	}
	_, err := w.Write(b.Bytes())
	return err
}

// diff returns the keys of tree whose values differ from base's,
// recursing into tables; empty tables are left out.
func diff(tree, base map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range tree {
		bv, ok := base[k]
		if tv, isMap := v.(map[string]any); isMap && ok {
			if bm, isMap := bv.(map[string]any); isMap {
				if d := diff(tv, bm); len(d) > 0 {
					out[k] = d
				}
				continue
			}
		}
		if !ok || !reflect.DeepEqual(v, bv) {
			out[k] = v
		}
	}
	return out
}

func dur(d time.Duration) string { return d.String() }

func prefixStrings(ps []netip.Prefix) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}

// nonNil returns s, or an empty list for nil (the encoder leaves out nil).
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// tree is c as the decoded TOML tree that Load reads back into c.
func (c *Config) tree() map[string]any {
	level := map[slog.Level]string{slog.LevelDebug: "debug", slog.LevelInfo: "info", slog.LevelWarn: "warn", slog.LevelError: "error"}[c.Log.Level]
	minVersion := map[uint16]string{tls.VersionTLS12: "1.2", tls.VersionTLS13: "1.3"}[c.TLS.MinVersion]
	t := map[string]any{
		"hostname":      c.Hostname,
		"data_dir":      c.DataDir,
		"local_domains": nonNil(c.LocalDomains),
		"postmaster":    c.Postmaster,
		"log":           map[string]any{"level": level, "format": c.Log.Format, "trace": nonNil(c.Log.Trace)},
		"http":          map[string]any{"address": c.HTTP.Address, "pprof": c.HTTP.Pprof},
		"limits": map[string]any{
			"max_message_size": c.Limits.MaxMessageSize, "max_recipients": c.Limits.MaxRecipients,
			"max_errors": c.Limits.MaxErrors, "error_delay_after": c.Limits.ErrorDelayAfter,
			"error_delay": dur(c.Limits.ErrorDelay), "command_timeout": dur(c.Limits.CommandTimeout),
			"data_timeout": dur(c.Limits.DataTimeout), "auth_fail_delay": dur(c.Limits.AuthFailDelay),
			"shutdown_timeout": dur(c.Limits.ShutdownTimeout), "restart_drain_timeout": dur(c.Limits.RestartDrainTimeout),
			"data_time_limit": dur(c.Limits.DataTimeLimit), "max_header_size": c.Limits.MaxHeaderSize,
			"max_data_in_flight": c.Limits.MaxDataInFlight, "max_data_in_memory": c.Limits.MaxDataInMemory,
		},
		"pkcs11":    map[string]any{"module": c.PKCS11.Module, "pin_file": c.PKCS11.PINFile, "timeout": dur(c.PKCS11.Timeout)},
		"spool":     map[string]any{"segment_size": c.Spool.SegmentSize},
		"dns":       map[string]any{"servers": nonNil(c.DNS.Servers), "trust_ad": c.DNS.TrustAD, "timeout": dur(c.DNS.Timeout)},
		"lmtp":      map[string]any{"network": c.LMTP.Network, "address": c.LMTP.Address},
		"directory": map[string]any{"backend": c.Directory.Backend, "postgres_dsn_file": c.Directory.PostgresDSNFile},
		"proxy":     map[string]any{"trusted": prefixStrings(c.Proxy.Trusted)},
		"admin": map[string]any{"socket_group": c.Admin.SocketGroup, "http_address": c.Admin.HTTPAddress,
			"token_file": c.Admin.TokenFile, "http_tls": c.Admin.HTTPTLS},
		"sendmail": map[string]any{"domain": c.Sendmail.Domain},
		"srs":      map[string]any{"domain": c.SRS.Domain, "secret_file": c.SRS.SecretFile, "max_age_days": c.SRS.MaxAgeDays},
	}
	if c.Process.User != "" {
		t["user"] = c.Process.User
	}
	if c.Process.Group != "" {
		t["group"] = c.Process.Group
	}
	tlsT := map[string]any{"cert_file": c.TLS.CertFile, "key_file": c.TLS.KeyFile, "self_signed": c.TLS.SelfSigned,
		"min_version": minVersion, "client_ca_file": c.TLS.ClientCAFile, "ca_file": c.TLS.CAFile,
		"ticket_rotation": dur(c.TLS.TicketRotation)}
	if len(c.TLS.Certificates) > 0 {
		var certs []map[string]any
		for _, f := range c.TLS.Certificates {
			certs = append(certs, map[string]any{"cert_file": f.CertFile, "key_file": f.KeyFile})
		}
		tlsT["certificate"] = certs
	}
	t["tls"] = tlsT
	var listeners []map[string]any
	for _, l := range c.Listeners {
		m := map[string]any{"name": l.Name, "role": string(l.Role), "address": l.Address, "tls_tickets": !l.NoTLSTickets,
			"proxy_protocol": l.ProxyProtocol, "greet_delay": dur(l.GreetDelay),
			"allow": prefixStrings(l.Allow), "deny": prefixStrings(l.Deny)}
		if l.ClientCertificates != "" {
			m["client_certificates"] = l.ClientCertificates
		}
		if l.Role != RoleMX || len(l.AuthMechanisms) > 0 { // refused on mx
			m["auth_mechanisms"] = nonNil(l.AuthMechanisms)
		}
		if l.DNSBLThreshold != 0 {
			m["dnsbl_threshold"] = l.DNSBLThreshold
		}
		if len(l.DNSBL) > 0 {
			var zs []map[string]any
			for _, z := range l.DNSBL {
				zs = append(zs, map[string]any{"zone": z.Zone, "weight": z.Weight})
			}
			m["dnsbl"] = zs
		}
		listeners = append(listeners, m)
	}
	t["listener"] = listeners
	auth := map[string]any{"cache_ttl": dur(c.Auth.CacheTTL), "argon2_time": c.Auth.Argon2Time,
		"argon2_memory_kib": c.Auth.Argon2MemoryKiB, "argon2_threads": c.Auth.Argon2Threads,
		"require_client_certificate": nonNil(c.Auth.RequireClientCertificate)}
	if c.Auth.SCRAMIterations != 0 {
		auth["scram_iterations"] = c.Auth.SCRAMIterations
	}
	if len(c.Auth.CertificateMap) > 0 {
		auth["certificate_map"] = c.Auth.CertificateMap
	}
	t["auth"] = auth
	aliases := map[string]any{}
	for a, targets := range c.Aliases {
		aliases[a] = targets
	}
	t["aliases"] = aliases
	sendAs := map[string]any{}
	for u, g := range c.SendAs {
		sendAs[u] = map[string]any{"addresses": nonNil(g.Addresses), "domains": nonNil(g.Domains)}
	}
	t["send_as"] = sendAs
	dl := c.Delivery
	t["delivery"] = map[string]any{"workers": dl.Workers, "retry_first": dur(dl.RetryFirst), "retry_max": dur(dl.RetryMax),
		"give_up": dur(dl.GiveUp), "delay_warning": dur(dl.DelayWarning), "idle_timeout": dur(dl.IdleTimeout),
		"max_messages_per_connection": dl.MaxMessagesPerConnection, "max_connections_per_host": dl.MaxConnectionsPerHost,
		"max_idle_per_host": dl.MaxIdlePerHost, "tls_minimum": dl.TLSMinimum, "ca_file": dl.CAFile,
		"direct_local": dl.DirectLocal}
	sh := c.Smarthost
	t["smarthost"] = map[string]any{"address": sh.Address, "implicit_tls": sh.ImplicitTLS, "username": sh.Username,
		"password_file": sh.PasswordFile, "domains": nonNil(sh.Domains), "ca_file": sh.CAFile}
	ma := map[string]any{"check": c.MailAuth.Check, "report_only": c.MailAuth.ReportOnly, "authserv_id": c.MailAuth.AuthservID,
		"max_dkim_signatures": c.MailAuth.MaxDKIMSignatures, "sign": c.MailAuth.Sign}
	if len(c.MailAuth.DKIMKeys) > 0 {
		var keys []map[string]any
		for _, k := range c.MailAuth.DKIMKeys {
			keys = append(keys, map[string]any{"domain": k.Domain, "selector": k.Selector, "key_file": k.KeyFile})
		}
		ma["dkim_key"] = keys
	}
	t["mail_auth"] = ma
	if a := c.ACME; a.Enabled {
		t["acme"] = map[string]any{"directory_url": a.DirectoryURL, "email": a.Email, "challenge": a.Challenge,
			"http_address": a.HTTPAddress, "tls_alpn_address": a.TLSALPNAddress, "dns_hook": a.DNSHook,
			"ca_roots_file": a.CARootsFile, "renew_before": dur(a.RenewBefore), "hostnames": nonNil(a.Hostnames)}
	}
	if a := c.Autoconfig; a.Enabled {
		t["autoconfig"] = map[string]any{"address": a.Address, "imap_host": a.IMAPHost, "imap_port": a.IMAPPort, "acme_names": a.ACMENames}
	}
	var addrs []string
	for _, a := range c.Check.PublicAddresses {
		addrs = append(addrs, a.String())
	}
	t["check"] = map[string]any{"public_addresses": nonNil(addrs)}
	if len(c.Milters) > 0 {
		var ms []map[string]any
		for _, m := range c.Milters {
			roles := []string{}
			for _, r := range m.Roles {
				roles = append(roles, string(r))
			}
			ms = append(ms, map[string]any{"name": m.Name, "address": m.Address, "roles": roles,
				"default_action": m.DefaultAction, "connect_timeout": dur(m.ConnectTimeout),
				"command_timeout": dur(m.CommandTimeout), "content_timeout": dur(m.ContentTimeout)})
		}
		t["milter"] = ms
	}
	o := c.OAuth
	t["oauth"] = map[string]any{"jwks_url": o.JWKSURL, "jwks_file": o.JWKSFile, "introspection_url": o.IntrospectionURL,
		"client_id": o.ClientID, "client_secret_file": o.ClientSecretFile, "issuer": o.Issuer, "audience": o.Audience,
		"user_claim": o.UserClaim, "leeway": dur(o.Leeway)}
	ad := c.Admission
	t["admission"] = map[string]any{"trusted": prefixStrings(ad.Trusted), "max_conns_per_ip": ad.MaxConnsPerIP,
		"max_conns_per_prefix": ad.MaxConnsPerPrefix, "max_conns_per_v6_site": ad.MaxConnsPerV6Site,
		"ip_rate": ad.IPRate, "ip_burst": ad.IPBurst, "prefix_rate": ad.PrefixRate, "prefix_burst": ad.PrefixBurst}
	ab := c.Abuse
	t["abuse"] = map[string]any{"enabled": ab.Enabled, "window": dur(ab.Window), "ip_ban_after": ab.IPBanAfter,
		"prefix_ban_after": ab.PrefixBanAfter, "prefix_ban_ips": ab.PrefixBanIPs, "stuffing_usernames": ab.StuffingUsernames,
		"user_throttle_after": ab.UserThrottleAfter, "distributed_ips": ab.DistributedIPs, "fail_delay": dur(ab.FailDelay),
		"max_fail_delay": dur(ab.MaxFailDelay), "ban_duration": dur(ab.BanDuration), "max_ban": dur(ab.MaxBan),
		"alert_strikes": ab.AlertStrikes, "good_ip_ttl": dur(ab.GoodIPTTL)}
	limits := func(l UserSendLimits) map[string]any {
		return map[string]any{"messages_per_hour": l.MessagesPerHour, "recipients_per_hour": l.RecipientsPerHour,
			"sessions": l.Sessions, "over_limit": l.OverLimit}
	}
	sl := limits(c.SendLimits.UserSendLimits)
	if len(c.SendLimits.Users) > 0 {
		users := map[string]any{}
		for n, l := range c.SendLimits.Users {
			users[n] = limits(l)
		}
		sl["users"] = users
	}
	t["send_limits"] = sl
	r := c.Redis
	t["redis"] = map[string]any{"address": r.Address, "username": r.Username, "password_file": r.PasswordFile,
		"db": r.DB, "key_prefix": r.KeyPrefix}
	return t
}
