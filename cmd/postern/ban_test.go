package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"postern/internal/admin"
	"postern/internal/admission"
	"postern/internal/admission/redisstore"
	"postern/internal/testkit"
)

// serveBans runs an admin server over store on DATA/admin.sock, with the
// CLI's clock.
func serveBans(t *testing.T, store admin.BanStore) (dataDir string) {
	q := &fakeQueue{}
	return serveAdminServer(t, &admin.Server{Spool: q, Runner: q, Bans: store, Now: func() time.Time { return cliNow }})
}

func runB(t *testing.T, args ...string) (string, error) {
	return runGroup(t, "ban", args...)
}

func TestBanCommands(t *testing.T) {
	store := admission.NewMemoryStore()
	data := serveBans(t, store)
	if got, err := runB(t, "list", "--data", data); err != nil || got != "No address is banned.\n" {
		t.Fatalf("empty list: %q, %v", got, err)
	}
	// The abuse engine's ban, with strikes.
	store.PutBan(context.Background(), admission.Ban{Prefix: netip.MustParsePrefix("203.0.113.0/24"),
		Until: cliNow.Add(90 * time.Minute), Created: cliNow.Add(-30 * time.Minute), Reason: "auth: 40 failures from the /24", Strikes: 2})
	got, err := runB(t, "add", "192.0.2.7", "--for", "48h", "--reason", "spam run", "--data", data)
	if err != nil || got != "192.0.2.7/32 banned until 2026-11-29T10:00:00Z (2d00h)\n" {
		t.Fatalf("ban add: %q, %v", got, err)
	}
	if _, err := runB(t, "add", "--data", data, "2001:db8:5::/48"); err != nil {
		t.Fatal(err)
	}
	got, err = runB(t, "list", "--data", data)
	if err != nil {
		t.Fatal(err)
	}
	want := `PREFIX           UNTIL                 REMAINING  STRIKES  MANUAL  REASON
192.0.2.7/32     2026-11-29 10:00:00Z  2d00h      0        yes     spam run
203.0.113.0/24   2026-11-27 11:30:00Z  1h30m      2        no      auth: 40 failures from the /24
2001:db8:5::/48  2026-11-28 10:00:00Z  1d00h      0        yes     banned by the administrator
3 bans
`
	if got != want {
		t.Errorf("ban list:\n%s\nwant:\n%s", got, want)
	}
	got, err = runB(t, "show", "203.0.113.77", "--data", data)
	if err != nil || !strings.Contains(got, "Banned:  203.0.113.0/24\n") || !strings.Contains(got, "Reason:  auth: 40 failures from the /24\n") ||
		!strings.Contains(got, "Until:   2026-11-27T11:30:00Z (1h30m left)\n") || !strings.Contains(got, "Strikes: 2\n") {
		t.Errorf("ban show:\n%s (%v)", got, err)
	}
	if got, err := runB(t, "show", "198.51.100.1", "--data", data); err != nil || got != "198.51.100.1 is not banned\n" {
		t.Errorf("show of a free address: %q, %v", got, err)
	}
	// The ban is effective: the store the gate asks sees it.
	if b, ok, _ := store.Banned(context.Background(), netip.MustParseAddr("192.0.2.7"), cliNow); !ok || !b.Manual || b.Reason != "spam run" {
		t.Errorf("store: %+v %v", b, ok)
	}
	// A manual ban of a prefix the engine banned keeps its strikes, and
	// says what it replaced.
	got, err = runB(t, "add", "203.0.113.0/24", "--data", data)
	if err != nil || !strings.Contains(got, "warning: 203.0.113.0/24 was banned already (until 2026-11-27T11:30:00Z); replaced\n") ||
		!strings.Contains(got, `warning: its reason was "auth: 40 failures from the /24", now "banned by the administrator"`) {
		t.Errorf("ban over the engine's: %q, %v", got, err)
	}
	// Shortened: said so.
	got, err = runB(t, "add", "192.0.2.7", "--for", "1h", "--reason", "spam run", "--data", data)
	if err != nil || !strings.Contains(got, "warning: 192.0.2.7/32 was banned until 2026-11-29T10:00:00Z; the new ban ends sooner\n") || strings.Contains(got, "reason was") {
		t.Errorf("shortened ban: %q, %v", got, err)
	}
	// A prefix with host bits: refused, unless --force.
	_, err = runB(t, "add", "198.51.100.7/24", "--data", data)
	if err == nil || !strings.Contains(err.Error(), "198.51.100.7/24 has host bits set: it would ban all of 198.51.100.0/24") {
		t.Errorf("host bits: %v", err)
	}
	if got, err := runB(t, "add", "198.51.100.7/24", "--force", "--data", data); err != nil || !strings.HasPrefix(got, "198.51.100.0/24 banned until") {
		t.Errorf("host bits with --force: %q, %v", got, err)
	}
	if b, _, _ := store.Banned(context.Background(), netip.MustParseAddr("203.0.113.1"), cliNow); b.Strikes != 2 || !b.Manual {
		t.Errorf("manual ban over the engine's: %+v", b)
	}
	if got, err := runB(t, "delete", "192.0.2.7", "--data", data); err != nil || got != "192.0.2.7: ban lifted\n" {
		t.Errorf("delete: %q, %v", got, err)
	}
	if _, err := runB(t, "delete", "192.0.2.7", "--data", data); err == nil || !strings.Contains(err.Error(), "no ban of exactly 192.0.2.7/32") {
		t.Errorf("second delete: %v", err)
	}
}

func TestBanUsage(t *testing.T) {
	if _, err := runB(t, "add", "192.0.2.1", "--for", "2days"); err == nil || !strings.Contains(err.Error(), "as in 90m, 48h or 720h") {
		t.Errorf("--for 2days: %v, want an example of a duration", err)
	}
	for _, args := range [][]string{
		{}, {"frobnicate"}, {"add"}, {"add", "not-an-ip"}, {"add", "10.0.0.0/7"}, {"add", "2001::/15"}, {"add", "10.1.2.3/8"},
		{"add", "192.0.2.1", "--for", "0s"}, {"add", "192.0.2.1", "--for", "9000h"},
		{"list", "extra"}, {"delete"}, {"show"}, {"list", "--reason", "x"},
	} {
		_, err := runB(t, args...)
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("ban %q: %v, want a usage error", args, err)
		}
	}
}

func TestBanNotRunning(t *testing.T) {
	_, err := runB(t, "list", "--data", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "postern is not running") {
		t.Errorf("got %v", err)
	}
}

// With the Redis store, a ban made through one node's socket is seen
// through another's: nodes share one view.
func TestBanSharedThroughRedis(t *testing.T) {
	addr := testkit.RedisAddr(t)
	prefix := fmt.Sprintf("postern-test:ban-cli:%d:", os.Getpid())
	node := func() admin.BanStore {
		s, err := redisstore.New(redisstore.Options{Addr: addr, Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := node(), node()
	t.Cleanup(func() { a.DeleteBan(context.Background(), netip.MustParsePrefix("192.0.2.0/24")) })
	dataA, dataB := serveBans(t, a), serveBans(t, b)
	if _, err := runB(t, "add", "192.0.2.0/24", "--for", "1h", "--reason", "shared", "--data", dataA); err != nil {
		t.Fatal(err)
	}
	got, err := runB(t, "show", "192.0.2.200", "--data", dataB)
	if err != nil || !strings.Contains(got, "Reason:  shared") {
		t.Errorf("node b: %q, %v", got, err)
	}
	if _, err := runB(t, "delete", "192.0.2.0/24", "--data", dataB); err != nil {
		t.Fatal(err)
	}
	if got, _ := runB(t, "list", "--data", dataA); got != "No address is banned.\n" {
		t.Errorf("node a after node b's delete: %q", got)
	}
}
