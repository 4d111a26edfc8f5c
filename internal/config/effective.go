package config

import "slices"

// What a reload can apply to a running server, and what waits for a
// restart (internal/server's live.go and reload.go use them).

// RestartKeys are the keys (tables, or keys within one) whose change
// needs a restart, because what they configure is built once: sockets,
// files and processes, connections to other servers, the identity of
// the server. Effective holds them; docs/operations.md lists them (as
// effective_test.go checks). Of [[listener]], allow and deny apply live.
var RestartKeys = []string{
	"hostname", "data_dir", "user", "group", "postmaster",
	"listener", "http", "tls", "spool", "lmtp",
	"directory", "dns", "proxy", "admin", "pkcs11", "acme", "autoconfig",
	"oauth", "auth", "srs", "redis", "milter", "sendmail",
	"log.format", "abuse.enabled", "limits.max_data_in_flight",
	"limits.max_data_in_memory", "delivery.workers", "delivery.direct_local",
}

// Effective returns next with the keys of RestartKeys at their values
// in start: the configuration a running server can apply. A reload
// applies Changes(Effective(start, start), Effective(start, next)) and
// names Changes(Effective(start, next), next) as needing a restart.
func Effective(start, next *Config) *Config {
	e := *next
	e.Source = start.Source
	e.Hostname, e.DataDir, e.Process, e.Postmaster = start.Hostname, start.DataDir, start.Process, start.Postmaster
	if next.MailAuth.AuthservID == next.Hostname { // derived from hostname, which needs a restart
		e.MailAuth.AuthservID = start.MailAuth.AuthservID
	}
	e.Listeners = slices.Clone(start.Listeners)
	for i, l := range e.Listeners {
		// The admission lists of the listeners that still run apply.
		if j := slices.IndexFunc(next.Listeners, func(n Listener) bool { return n.Name == l.Name }); j >= 0 {
			e.Listeners[i].Allow, e.Listeners[i].Deny = next.Listeners[j].Allow, next.Listeners[j].Deny
		}
	}
	e.HTTP, e.TLS, e.Spool, e.LMTP, e.Directory, e.DNS = start.HTTP, start.TLS, start.Spool, start.LMTP, start.Directory, start.DNS
	e.Proxy, e.Admin, e.PKCS11, e.ACME, e.Autoconfig = start.Proxy, start.Admin, start.PKCS11, start.ACME, start.Autoconfig
	e.OAuth, e.Auth, e.SRS, e.Redis, e.Milters, e.Sendmail = start.OAuth, start.Auth, start.SRS, start.Redis, start.Milters, start.Sendmail
	e.Log.Format = start.Log.Format
	e.Abuse.Enabled = start.Abuse.Enabled
	e.Limits.MaxDataInFlight, e.Limits.MaxDataInMemory = start.Limits.MaxDataInFlight, start.Limits.MaxDataInMemory
	e.Delivery.Workers, e.Delivery.DirectLocal = start.Delivery.Workers, start.Delivery.DirectLocal
	return &e
}
