package config

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
)

const effectiveBase = `hostname = "mail.example.com"
local_domains = ["example.com"]
[tls]
self_signed = true
[log]
level = "info"
[[listener]]
name = "mx"
role = "mx"
address = "127.0.0.1:25"
[[listener]]
name = "sub"
role = "submission"
address = "127.0.0.1:587"
`

// changeKeys returns the keys of cs.
func changeKeys(cs []Change) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Key)
	}
	return out
}

// TestEffective: Effective takes the keys that can change live from the
// new file and holds those that need a restart at their values of the
// start, so that the changes a reload applies and those it names as
// needing a restart are told apart.
func TestEffective(t *testing.T) {
	dir := t.TempDir()
	start := loadText(t, dir, effectiveBase)
	next := loadText(t, dir, strings.NewReplacer(
		`hostname = "mail.example.com"`, `hostname = "mx.example.com"`,
		`address = "127.0.0.1:25"`, "address = \"127.0.0.1:2525\"\ndeny = [\"192.0.2.0/24\"]",
		`level = "info"`, "level = \"debug\"\nformat = \"json\"",
	).Replace(effectiveBase)+`
[aliases]
"info@example.com" = ["a@example.com"]
[limits]
max_recipients = 5
shutdown_timeout = "7s"
max_data_in_flight = "900MB"
[delivery]
workers = 3
direct_local = false
retry_first = "3m"
[abuse]
enabled = false
ip_ban_after = 4
[send_limits]
messages_per_hour = 10
[admission]
max_conns_per_ip = 2
`)
	eff := Effective(start, next)
	applied := changeKeys(Changes(Effective(start, start), eff))
	want := []string{
		"abuse.ip_ban_after", "admission.max_conns_per_ip", `aliases."info@example.com"`, "delivery.retry_first",
		"limits.max_recipients", "limits.shutdown_timeout", "listener[0].deny", "log.level", "send_limits.messages_per_hour",
	}
	if !slices.Equal(applied, want) {
		t.Errorf("applied live:\n%q\nwant\n%q", applied, want)
	}
	restart := changeKeys(Changes(eff, next))
	want = []string{"abuse.enabled", "delivery.direct_local", "delivery.workers", "hostname", "limits.max_data_in_flight", "listener[0].address", "log.format", "mail_auth.authserv_id"}
	if !slices.Equal(restart, want) {
		t.Errorf("needs a restart:\n%q\nwant\n%q", restart, want)
	}
	if start.Listeners[0].Deny != nil || start.Hostname != "mail.example.com" {
		t.Error("Effective changed the start's configuration")
	}
}

// TestEffectiveClassifiesEveryTable: each table of the configuration is
// either applied by a reload or held by Effective until a
// restart. A new one fails here until it is put in one list, and in
// docs/operations.md.
func TestEffectiveClassifiesEveryTable(t *testing.T) {
	live := []string{"LocalDomains", "Log", "Limits", "Aliases", "SendAs", "Delivery", "Smarthost", "MailAuth", "Check", "AdmissionTables", "Source"}
	restart := []string{"Hostname", "DataDir", "Postmaster", "HTTP", "TLS", "Listeners", "Auth", "Spool", "DNS", "LMTP", "Directory",
		"ACME", "OAuth", "Proxy", "Admin", "Process", "PKCS11", "Autoconfig", "Sendmail", "SRS", "Milters"}
	typ := reflect.TypeFor[Config]()
	for i := range typ.NumField() {
		name := typ.Field(i).Name
		if !slices.Contains(live, name) && !slices.Contains(restart, name) {
			t.Errorf("Config.%s: neither applied by a reload nor held until a restart (effective.go)", name)
		}
	}
	// Every restart-only table is held: a change to it shows as needing
	// a restart, not as applied.
	dir := t.TempDir()
	start := loadText(t, dir, effectiveBase)
	next := loadText(t, dir, effectiveBase+`
[spool]
segment_size = "8MB"
[dns]
timeout = "9s"
[srs]
max_age_days = 3
[auth]
cache_ttl = "9s"
[redis]
key_prefix = "other:"
`)
	if got := changeKeys(Changes(Effective(start, start), Effective(start, next))); len(got) != 0 {
		t.Errorf("restart-only keys applied: %q", got)
	}
}

// TestRestartKeysDocumented: docs/operations.md's Reload section names
// every key that needs a restart.
func TestRestartKeysDocumented(t *testing.T) {
	b, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	start := strings.Index(doc, "## Reload")
	end := strings.Index(doc, "### Graceful restart")
	if start < 0 || end < start {
		t.Fatal("no Reload section in docs/operations.md")
	}
	doc = doc[start:end]
	for _, k := range RestartKeys {
		forms := []string{"`" + k + "`", "`[" + k + "]`", "`[[" + k + "]]`"}
		if table, key, ok := strings.Cut(k, "."); ok {
			forms = append(forms, "`["+table+"] "+key+"`")
		}
		if !slices.ContainsFunc(forms, func(f string) bool { return strings.Contains(doc, f) }) {
			t.Errorf("docs/operations.md, Reload: %s needs a restart, not said", k)
		}
	}
}
