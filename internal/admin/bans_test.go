package admin

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"postern/internal/admission"
)

func TestBanAPI(t *testing.T) {
	f := newFixture(t) // no Bans yet: the ban API answers 503
	ctx := context.Background()
	if _, err := f.client.Bans(ctx); err == nil || !strings.Contains(err.Error(), "not available") {
		t.Fatalf("Bans without a store: %v", err)
	}

	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	store := admission.NewMemoryStore()
	srv := &Server{Spool: f.spool, Runner: f.runner, Bans: store, Now: func() time.Time { return now }, Logger: quiet()}
	c := serve(t, srv, f.dir+"/bans.sock")

	b, err := c.Ban(ctx, "::ffff:192.0.2.9", 2*time.Hour, "  too   many\nlines ")
	if err != nil {
		t.Fatal(err)
	}
	want := BanInfo{Prefix: "192.0.2.9/32", Until: now.Add(2 * time.Hour), Reason: "too many lines", Created: now, Manual: true}
	if b != want {
		t.Errorf("Ban = %+v\nwant %+v", b, want)
	}
	if got, err := c.BanOf(ctx, "192.0.2.9"); err != nil || got.Prefix != "192.0.2.9/32" {
		t.Errorf("BanOf = %+v, %v", got, err)
	}
	if _, err := c.BanOf(ctx, "192.0.2.10"); !errors.Is(err, ErrNoBan) {
		t.Errorf("BanOf of a free address: %v", err)
	}
	for _, bad := range []struct{ prefix, reason string }{
		{"0.0.0.0/0", ""}, {"10.0.0.0/7", ""}, {"::/0", ""}, {"nonsense", ""}, {"fe80::1%eth0", ""},
		{"192.0.2.1", strings.Repeat("x", 201)},
	} {
		if _, err := c.Ban(ctx, bad.prefix, time.Hour, bad.reason); err == nil {
			t.Errorf("Ban(%q) accepted", bad.prefix)
		}
	}
	if _, err := c.Ban(ctx, "192.0.2.1", 400*24*time.Hour, ""); err == nil {
		t.Error("a ban longer than MaxBanFor was accepted")
	}
	if err := c.Unban(ctx, "192.0.2.0/24"); !errors.Is(err, ErrNoBan) {
		t.Errorf("Unban of a prefix not banned as such: %v", err)
	}
	if err := c.Unban(ctx, "192.0.2.9"); err != nil {
		t.Fatal(err)
	}
	if bans, _ := store.Bans(ctx, now); len(bans) != 0 {
		t.Errorf("bans left: %v", bans)
	}
}

func TestParseBanPrefix(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.9":            "192.0.2.9/32",
		"192.0.2.9/24":         "192.0.2.0/24",
		"::ffff:192.0.2.9/120": "192.0.2.0/24",
		"2001:db8::1":          "2001:db8::1/128",
		" 2001:db8:1:2::/64 ":  "2001:db8:1:2::/64",
		"10.0.0.0/8":           "10.0.0.0/8",
	} {
		p, err := ParseBanPrefix(in)
		if err != nil || p != netip.MustParsePrefix(want) {
			t.Errorf("ParseBanPrefix(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
}
