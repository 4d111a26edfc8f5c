package config

import (
	"path/filepath"
	"strings"
	"testing"
)

const changesBase = `
hostname = "mail.example.com"
local_domains = ["example.com"]
[tls]
self_signed = true
[[listener]]
role = "mx"
address = "127.0.0.1:25"
[aliases]
"info@example.com" = ["alice@example.com"]
[smarthost]
address = "relay.example.net:587"
username = "u"
password_file = "relay.secret"
`

// TestChanges: each changed key is named as the file names it, with its
// old and new values as printed; unchanged keys are not named; secret
// files show by name only.
func TestChanges(t *testing.T) {
	dir := t.TempDir()
	old := loadText(t, dir, changesBase)
	if got := Changes(old, old); len(got) != 0 {
		t.Fatalf("no change: got %v", got)
	}
	changed := strings.NewReplacer(
		`address = "127.0.0.1:25"`, "address = \"127.0.0.1:2525\"\nallow = [\"192.0.2.0/24\"]",
		`"info@example.com" = ["alice@example.com"]`, `"info@example.com" = ["alice@example.com", "bob@example.com"]`+"\n"+`"sales@example.com" = "bob@example.com"`,
		`password_file = "relay.secret"`, `password_file = "relay2.secret"`,
	).Replace(changesBase) + `
[limits]
max_recipients = 7
[delivery.tls_minimum]
"example.org" = "verify"
[[listener]]
role = "submission"
address = "127.0.0.1:587"
`
	got := Changes(old, loadText(t, dir, changed))
	var lines []string
	for _, c := range got {
		lines = append(lines, c.String())
	}
	want := []string{
		`aliases."info@example.com": ["alice@example.com"] → ["alice@example.com", "bob@example.com"]`,
		`aliases."sales@example.com": (none) → ["bob@example.com"]`,
		`delivery.tls_minimum."example.org": (none) → "verify"`,
		`limits.max_recipients: 100 → 7`,
		`listener[0].address: "127.0.0.1:25" → "127.0.0.1:2525"`,
		`listener[0].allow: [] → ["192.0.2.0/24"]`,
		`listener[1]: (none) → added`,
		`smarthost.password_file: "` + filepath.Join(dir, "relay.secret") + `" → "` + filepath.Join(dir, "relay2.secret") + `"`,
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("changes:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	// Back again: the removed listener and alias are named.
	back := Changes(loadText(t, dir, changed), old)
	var keys []string
	for _, c := range back {
		keys = append(keys, c.Key)
	}
	if k := strings.Join(keys, " "); !strings.Contains(k, "listener[1]") || !strings.Contains(k, `aliases."sales@example.com"`) {
		t.Fatalf("reverse changes: %v", back)
	}
}
