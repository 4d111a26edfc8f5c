package main

import (
	"strings"
	"testing"

	"postern/internal/admin"
	"postern/internal/config"
)

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
	start := config.Dev(t.TempDir())
	cur := &liveSet{cfg: config.Effective(start, start), sec: config.Secrets{SmarthostPassword: "old-pass"}, dkim: []string{"example.com p1"}}
	next := &liveSet{cfg: config.Effective(start, start), sec: config.Secrets{SmarthostPassword: "new-pass", RedisPassword: "new-redis"},
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
