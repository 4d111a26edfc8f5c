package main

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"postern/internal/admin"
	"postern/internal/config"
)

// loadConfigText loads text as postern.toml in dir.
func loadConfigText(t *testing.T, dir, text string) *config.Config {
	t.Helper()
	p := filepath.Join(dir, "postern.toml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const liveBase = `hostname = "mail.example.com"
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

func keysOf(cs []config.Change) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Key)
	}
	return out
}

// TestEffective: effective takes the keys that can change live from the
// new file and holds those that need a restart at their values of the
// start, so that the changes a reload applies and those it names as
// needing a restart are told apart.
func TestEffective(t *testing.T) {
	dir := t.TempDir()
	start := loadConfigText(t, dir, liveBase)
	next := loadConfigText(t, dir, strings.NewReplacer(
		`hostname = "mail.example.com"`, `hostname = "mx.example.com"`,
		`address = "127.0.0.1:25"`, "address = \"127.0.0.1:2525\"\ndeny = [\"192.0.2.0/24\"]",
		`level = "info"`, "level = \"debug\"\nformat = \"json\"",
	).Replace(liveBase)+`
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
	eff := effective(start, next)
	applied := keysOf(config.Changes(effective(start, start), eff))
	want := []string{
		"abuse.ip_ban_after", "admission.max_conns_per_ip", `aliases."info@example.com"`, "delivery.retry_first",
		"limits.max_recipients", "limits.shutdown_timeout", "listener[0].deny", "log.level", "send_limits.messages_per_hour",
	}
	if !slices.Equal(applied, want) {
		t.Errorf("applied live:\n%q\nwant\n%q", applied, want)
	}
	restart := keysOf(config.Changes(eff, next))
	want = []string{"abuse.enabled", "delivery.direct_local", "delivery.workers", "hostname", "limits.max_data_in_flight", "listener[0].address", "log.format", "mail_auth.authserv_id"}
	if !slices.Equal(restart, want) {
		t.Errorf("needs a restart:\n%q\nwant\n%q", restart, want)
	}
	if start.Listeners[0].Deny != nil || start.Hostname != "mail.example.com" {
		t.Error("effective changed the start's configuration")
	}
}

// TestEffectiveClassifiesEveryTable: each table of the configuration is
// either applied by a reload (live.go) or held by effective until a
// restart. A new one fails here until it is put in one list, and in
// docs/operations.md.
func TestEffectiveClassifiesEveryTable(t *testing.T) {
	live := []string{"LocalDomains", "Log", "Limits", "Aliases", "SendAs", "Delivery", "Smarthost", "MailAuth", "Check", "AdmissionTables", "Source"}
	restart := []string{"Hostname", "DataDir", "Postmaster", "HTTP", "TLS", "Listeners", "Auth", "Spool", "DNS", "LMTP", "Directory",
		"ACME", "OAuth", "Proxy", "Admin", "Process", "PKCS11", "Autoconfig", "Sendmail", "SRS", "Milters"}
	typ := reflect.TypeFor[config.Config]()
	for i := range typ.NumField() {
		name := typ.Field(i).Name
		if !slices.Contains(live, name) && !slices.Contains(restart, name) {
			t.Errorf("config.Config.%s: neither applied by a reload nor held until a restart (live.go)", name)
		}
	}
	// Every restart-only table is held: a change to it shows as needing
	// a restart, not as applied.
	dir := t.TempDir()
	start := loadConfigText(t, dir, liveBase)
	next := loadConfigText(t, dir, liveBase+`
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
	if got := keysOf(config.Changes(effective(start, start), effective(start, next))); len(got) != 0 {
		t.Errorf("restart-only keys applied: %q", got)
	}
}

// TestWriteReloadReport: what `postern reload` prints.
func TestWriteReloadReport(t *testing.T) {
	var b strings.Builder
	writeReloadReport(&b, admin.ReloadReport{
		Config:       "/etc/postern/postern.toml",
		Changed:      []admin.ReloadChange{{Key: `aliases."info@example.com"`, Old: "(none)", New: `["alice@example.com"]`}},
		NeedsRestart: []admin.ReloadChange{{Key: "listener[0].address", Old: `":25"`, New: `":2525"`}},
		Reloaded:     []string{"certificates", "users"},
	})
	want := `Reloaded /etc/postern/postern.toml:
  applied:
    aliases."info@example.com": (none) → ["alice@example.com"]
  needs a restart (not applied; postern restart applies it):
    listener[0].address: ":25" → ":2525"
  reloaded: certificates, users
`
	if b.String() != want {
		t.Errorf("report:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	writeReloadReport(&b, admin.ReloadReport{Config: "/etc/postern/postern.toml", Reloaded: []string{"certificates", "users"}})
	if !strings.Contains(b.String(), "the configuration is unchanged") {
		t.Errorf("unchanged:\n%s", b.String())
	}
	b.Reset()
	writeReloadReport(&b, admin.ReloadReport{Config: "/etc/postern/postern.toml", Errors: []string{refusedPrefix + "delivery.ca_file: missing"}})
	if !strings.HasPrefix(b.String(), "Configuration /etc/postern/postern.toml refused; the running one serves on:") {
		t.Errorf("refused:\n%s", b.String())
	}
}

// TestReloadChangesSecrets: a changed secret file's contents are named,
// never shown; the smarthost's applies, the others need a restart.
func TestReloadChangesSecrets(t *testing.T) {
	dir := t.TempDir()
	start := loadConfigText(t, dir, liveBase)
	cur := &liveSet{cfg: effective(start, start), sec: config.Secrets{SmarthostPassword: "old-pass"}, dkim: []string{"example.com p1"}}
	next := &liveSet{cfg: effective(start, start), sec: config.Secrets{SmarthostPassword: "new-pass", RedisPassword: "new-redis"},
		dkim: []string{"example.com p1", "example.com p2"}}
	changed, restart := reloadChanges(cur, next, start, config.Secrets{RedisPassword: "old-redis"}, start)
	all := ""
	for _, c := range append(changed, restart...) {
		all += c.String() + "\n"
	}
	for _, secret := range []string{"old-pass", "new-pass", "old-redis", "new-redis"} {
		if strings.Contains(all, secret) {
			t.Fatalf("a secret in the report:\n%s", all)
		}
	}
	if len(changed) != 2 || changed[0].Key != "smarthost.password_file" || changed[1].String() != "DKIM keys: [example.com p1] → [example.com p1, example.com p2]" {
		t.Errorf("changed: %v", changed)
	}
	if len(restart) != 1 || restart[0].Key != "redis.password_file" {
		t.Errorf("needs a restart: %v", restart)
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
	for _, k := range restartKeys {
		forms := []string{"`" + k + "`", "`[" + k + "]`", "`[[" + k + "]]`"}
		if table, key, ok := strings.Cut(k, "."); ok {
			forms = append(forms, "`["+table+"] "+key+"`")
		}
		if !slices.ContainsFunc(forms, func(f string) bool { return strings.Contains(doc, f) }) {
			t.Errorf("docs/operations.md, Reload: %s needs a restart, not said", k)
		}
	}
}
