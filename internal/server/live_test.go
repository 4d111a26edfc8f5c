package server

import (
	"strings"
	"testing"

	"postern/internal/config"
)

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
