package userdb

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"
)

func testDirectory(t *testing.T, open opener, users ...string) (*Directory, *DB) {
	t.Helper()
	db := open(t, newClock(), nil)
	for _, u := range users {
		if err := db.Add(u, "pw"); err != nil {
			t.Fatal(err)
		}
	}
	cfg := DirectoryConfig{
		LocalDomains: []string{"example.org", "Example.NET"},
		Aliases: map[string][]string{
			"info@example.org":       {"alice@example.org", "Bob@example.org"},
			"Sales@example.org":      {"info@example.org", "carol@example.net"}, // nested
			"loop1@example.org":      {"loop2@example.org"},
			"loop2@example.org":      {"loop1@example.org", "alice@example.org"},
			"Alice@example.net":      {"alice@example.org"},
			"bob@example.org":        {"bob@example.org", "carol@example.net"}, // shadows the user, keeps it
			"ghost@example.org":      {"nobody@example.org"},
			"postmaster@example.net": {"carol@example.net"},
		},
		SendAs: map[string]SendAsGrant{
			"Carol@example.net": {Addresses: []string{"ceo@example.org"}, Domains: []string{"Newsletter.Example.org"}},
		},
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return NewDirectory(db, cfg), db
}

func TestDirectoryLocalDomains(t *testing.T) { eachBackend(t, testDirectoryLocalDomains) }

func testDirectoryLocalDomains(t *testing.T, open opener) {
	d, _ := testDirectory(t, open)
	for dom, want := range map[string]bool{
		"example.org": true, "EXAMPLE.ORG": true, "example.net": true, "example.net.": true,
		"example.com": false, "sub.example.org": false, "": false,
	} {
		if got := d.IsLocalDomain(dom); got != want {
			t.Errorf("IsLocalDomain(%q) = %v", dom, got)
		}
	}
}

func TestDirectoryRecipientExists(t *testing.T) { eachBackend(t, testDirectoryRecipientExists) }

func testDirectoryRecipientExists(t *testing.T, open opener) {
	d, _ := testDirectory(t, open, "alice@example.org", "Bob@example.org", "carol@example.net")
	ctx := context.Background()
	for addr, want := range map[string]bool{
		"alice@example.org":      true,
		"ALICE@example.org":      true,
		"bob@example.org":        true,
		"info@example.org":       true,
		"INFO@example.org":       true,
		"sales@example.org":      true,
		"ghost@example.org":      true,  // an alias exists even if its target does not
		"PostMaster@example.net": true,  // its alias reaches carol
		"postmaster@example.org": false, // nobody would receive it (issue 12, §6)
		"postmaster":             false,
		"nobody@example.org":     false,
		"alice@example.com":      false, // not local
		"postmaster@example.com": false,
		"alice":                  false,
		"":                       false,
		"alice@":                 false,
	} {
		got, err := d.RecipientExists(ctx, addr)
		if err != nil || got != want {
			t.Errorf("RecipientExists(%q) = %v, %v; want %v", addr, got, err, want)
		}
	}
}

func TestDirectoryResolve(t *testing.T) { eachBackend(t, testDirectoryResolve) }

func testDirectoryResolve(t *testing.T, open opener) {
	d, db := testDirectory(t, open, "alice@example.org", "Bob@example.org", "carol@example.net")
	for addr, want := range map[string][]string{
		"alice@example.org":      {"alice@example.org"},
		"ALICE@EXAMPLE.ORG":      {"alice@example.org"},
		"info@example.org":       {"alice@example.org", "bob@example.org", "carol@example.net"},
		"sales@example.org":      {"alice@example.org", "bob@example.org", "carol@example.net"},
		"loop1@example.org":      {"alice@example.org"},
		"alice@example.net":      {"alice@example.org"},
		"bob@example.org":        {"bob@example.org", "carol@example.net"},
		"postmaster@example.net": {"carol@example.net"},
	} {
		got, err := d.Resolve(addr)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("Resolve(%q) = %q, %v; want %q", addr, got, err, want)
		}
	}
	for addr, want := range map[string]error{
		"nobody@example.org":     ErrNotFound,
		"ghost@example.org":      ErrNotFound,
		"alice@example.com":      ErrNotLocal,
		"alice":                  ErrNotLocal,
		"postmaster@example.org": ErrNotFound, // no postmaster anywhere yet
	} {
		if got, err := d.Resolve(addr); !errors.Is(err, want) {
			t.Errorf("Resolve(%q) = %q, %v; want %v", addr, got, err, want)
		}
	}

	// postmaster@ the first domain, and every domain without its own,
	// reach the postmaster user once one exists.
	if err := db.Add("PostMaster@example.org", "pw"); err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string][]string{
		"postmaster@example.org": {"postmaster@example.org"},
		"postmaster":             {"postmaster@example.org"},
		"postmaster@example.net": {"carol@example.net"}, // its own alias wins
	} {
		got, err := d.Resolve(addr)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("Resolve(%q) = %q, %v; want %q", addr, got, err, want)
		}
	}
	d2 := NewDirectory(db, DirectoryConfig{LocalDomains: []string{"example.org", "other.example"}})
	if got, err := d2.Resolve("Postmaster@other.example"); err != nil || !slices.Equal(got, []string{"postmaster@example.org"}) {
		t.Errorf("postmaster fallback: %q, %v", got, err)
	}
}

func TestDirectoryResolveDepth(t *testing.T) { eachBackend(t, testDirectoryResolveDepth) }

func testDirectoryResolveDepth(t *testing.T, open opener) {
	db := open(t, newClock(), nil)
	if err := db.Add("end@example.org", "pw"); err != nil {
		t.Fatal(err)
	}
	aliases := make(map[string][]string)
	chain := []string{"a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9"}
	for i := 0; i+1 < len(chain); i++ {
		aliases[chain[i]+"@example.org"] = []string{chain[i+1] + "@example.org"}
	}
	aliases["a9@example.org"] = []string{"end@example.org"}
	d := NewDirectory(db, DirectoryConfig{LocalDomains: []string{"example.org"}, Aliases: aliases})
	if got, err := d.Resolve("a3@example.org"); err != nil || !slices.Equal(got, []string{"end@example.org"}) {
		t.Errorf("7 levels: %q, %v", got, err)
	}
	if _, err := d.Resolve("a0@example.org"); !errors.Is(err, ErrNotFound) {
		t.Errorf("11 levels resolved: %v", err)
	}
}

func TestDirectoryMaySendAs(t *testing.T) { eachBackend(t, testDirectoryMaySendAs) }

func testDirectoryMaySendAs(t *testing.T, open opener) {
	d, _ := testDirectory(t, open, "alice@example.org", "Bob@example.org", "carol@example.net")
	ctx := context.Background()
	for _, tc := range []struct {
		user, addr string
		want       bool
	}{
		{"alice@example.org", "alice@example.org", true},
		{"alice@example.org", "ALICE@example.org", true},
		{"Bob@example.org", "bob@example.org", true},
		{"alice@example.org", "", true}, // null reverse-path
		{"alice@example.org", "bob@example.org", false},
		{"alice@example.org", "info@example.org", true},  // alias lists alice
		{"Bob@example.org", "info@example.org", true},    // alias lists Bob
		{"carol@example.net", "info@example.org", false}, // only through sales
		{"carol@example.net", "sales@example.org", true},
		{"alice@example.org", "sales@example.org", false}, // not a direct target
		{"alice@example.org", "alice@example.net", true},
		{"carol@example.net", "ceo@example.org", true},
		{"carol@example.net", "CEO@example.org", true},
		{"carol@example.net", "anyone@newsletter.example.org", true},
		{"carol@example.net", "x@sub.newsletter.example.org", false},
		{"carol@example.net", "cfo@example.org", false},
		{"alice@example.org", "ceo@example.org", false},
		{"alice@example.org", "anyone@newsletter.example.org", false},
		{"", "alice@example.org", false},
		{"alice@example.org", "alice@example.org.evil", false},
	} {
		got, err := d.MaySendAs(ctx, tc.user, tc.addr)
		if err != nil || got != tc.want {
			t.Errorf("MaySendAs(%q, %q) = %v, %v; want %v", tc.user, tc.addr, got, err, tc.want)
		}
	}
}

func TestDirectoryConfigValidate(t *testing.T) {
	for _, cfg := range []DirectoryConfig{
		{},
		{LocalDomains: []string{"exa mple.org"}},
		{LocalDomains: []string{"example.org"}, Aliases: map[string][]string{"a@example.com": {"b@example.org"}}},
		{LocalDomains: []string{"example.org"}, Aliases: map[string][]string{"a@example.org": {"b@"}}},
		{LocalDomains: []string{"example.org"}, Aliases: map[string][]string{"a@example.org": {}}},
		{LocalDomains: []string{"example.org"}, Aliases: map[string][]string{"a@example.org": {"../x@example.org"}}},
		{LocalDomains: []string{"example.org"}, SendAs: map[string]SendAsGrant{"bad": {}}},
		{LocalDomains: []string{"example.org"}, SendAs: map[string]SendAsGrant{"a@example.org": {Addresses: []string{"x"}}}},
		{LocalDomains: []string{"example.org"}, SendAs: map[string]SendAsGrant{"a@example.org": {Domains: []string{"a b"}}}},
	} {
		if err := cfg.Validate(); err == nil {
			t.Errorf("Validate accepted %+v", cfg)
		}
	}
	// A target in another domain forwards.
	if err := (DirectoryConfig{LocalDomains: []string{"example.org"}, Aliases: map[string][]string{"a@example.org": {"b@example.com"}}}).Validate(); err != nil {
		t.Errorf("alias to another domain: %v", err)
	}
}

// TestDirectoryPostmasterResolves checks that postmaster@ a local domain
// exists only when its mail reaches a user (RFC 5321 §4.5.1 requires
// the address; accepting it for nobody bounces the mail later, to a
// sender who may be forged), and that it falls back to
// DirectoryConfig.Postmaster.
func TestDirectoryPostmasterResolves(t *testing.T) { eachBackend(t, testDirectoryPostmasterResolves) }

func testDirectoryPostmasterResolves(t *testing.T, open opener) {
	ctx := context.Background()
	db := open(t, newClock(), nil)
	cfg := DirectoryConfig{
		LocalDomains: []string{"example.org", "example.net", "example.com"},
		Aliases:      map[string][]string{"postmaster@example.com": {"nobody@example.com"}},
		Postmaster:   "hostmaster@example.org",
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	d := NewDirectory(db, cfg)
	exists := func(addr string, want bool) {
		t.Helper()
		if got, err := d.RecipientExists(ctx, addr); err != nil || got != want {
			t.Errorf("RecipientExists(%q) = %v, %v; want %v", addr, got, err, want)
		}
	}
	unreachable := func(want ...string) {
		t.Helper()
		list, err := d.UnreachablePostmasters(ctx)
		var got []string
		for _, u := range list {
			got = append(got, u.Address+" via "+u.Via)
		}
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("UnreachablePostmasters = %q, %v; want %q", got, err, want)
		}
	}
	exists("postmaster@example.org", false)
	exists("postmaster", false)
	unreachable("postmaster@example.org via hostmaster@example.org", "postmaster@example.net via hostmaster@example.org",
		"postmaster@example.com via nobody@example.com", "hostmaster@example.org via hostmaster@example.org")

	if err := db.Add("Hostmaster@example.org", "pw"); err != nil {
		t.Fatal(err)
	}
	exists("postmaster@example.org", true) // to the configured postmaster
	exists("POSTMASTER@example.net", true)
	exists("postmaster", true)
	exists("postmaster@example.com", false) // its own alias names nobody
	unreachable("postmaster@example.com via nobody@example.com")
	if got, err := d.Resolve("postmaster@example.net"); err != nil || !slices.Equal(got, []string{"hostmaster@example.org"}) {
		t.Errorf("Resolve(postmaster@example.net) = %q, %v", got, err)
	}

	if err := db.Add("nobody@example.com", "pw"); err != nil {
		t.Fatal(err)
	}
	exists("postmaster@example.com", true)
	unreachable()
}

// TestDirectoryUnicodeFolding checks the comparisons that decide
// locality and identity (issue 12, §8): domains as A-labels, under a
// strict IDNA profile that refuses what strings.ToLower would fold (the
// KELVIN SIGN of "wor\u212A.test" is not the k of work.test); local
// parts fold ASCII letters only, other characters compared as written in
// NFC.
func TestDirectoryUnicodeFolding(t *testing.T) { eachBackend(t, testDirectoryUnicodeFolding) }

func testDirectoryUnicodeFolding(t *testing.T, open opener) {
	ctx := context.Background()
	db := open(t, newClock(), nil)
	for _, u := range []string{"alice@work.test", "Élise@work.test", "élise@work.test", "kate@work.test", "x@xn--bcher-kva.example"} {
		if err := db.Add(u, "pw"); err != nil {
			t.Fatalf("Add(%q): %v", u, err)
		}
	}
	if err := db.Add("e\u0301lise@work.test", "pw"); !errors.Is(err, ErrExists) {
		t.Errorf("Add of élise in NFD: %v, want ErrExists (the same in NFC)", err)
	}
	if _, err := NormalizeAddress("alice@wor\u212A.test"); !errors.Is(err, ErrInvalidAddress) {
		t.Errorf("NormalizeAddress(Kelvin domain): %v", err)
	}
	cfg := DirectoryConfig{LocalDomains: []string{"work.test", "xn--bcher-kva.example"},
		SendAs: map[string]SendAsGrant{"alice@work.test": {Domains: []string{"xn--bcher-kva.example"}}}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	d := NewDirectory(db, cfg)
	for dom, want := range map[string]bool{
		"work.test": true, "WORK.test.": true, "wor\u212A.test": false, "ｗork.test": false,
		"bücher.example": true, "BÜCHER.example": false, "bu\u0308cher.example": false,
	} {
		if got := d.IsLocalDomain(dom); got != want {
			t.Errorf("IsLocalDomain(%q) = %v, want %v", dom, got, want)
		}
	}
	for addr, want := range map[string]bool{
		"alice@work.test":         true,
		"ALICE@Work.Test":         true,
		"alice@wor\u212A.test":    false,
		"\u212Aate@work.test":     true, // U+212A is canonically K (NFC)
		"Élise@work.test":         true,
		"E\u0301lise@work.test":   true,
		"ÉLISE@work.test":         true,  // its ASCII letters fold: Élise
		"ëlise@work.test":         false, // another letter
		"x@bücher.example":        true,
		"X@xn--bcher-kva.example": true,
		"ſ@work.test":             false,
		"alice@work.test\u0000":   false,
	} {
		if got, err := d.RecipientExists(ctx, addr); err != nil || got != want {
			t.Errorf("RecipientExists(%q) = %v, %v; want %v", addr, got, err, want)
		}
	}
	for _, tc := range []struct {
		user, addr string
		want       bool
	}{
		{"alice@work.test", "Alice@WORK.TEST", true},
		{"alice@work.test", "alice@wor\u212A.test", false},
		{"Élise@work.test", "élise@work.test", false}, // two users
		{"élise@work.test", "e\u0301lise@work.test", true},
		{"alice@work.test", "anyone@bücher.example", true}, // granted by its A-label
		{"alice@work.test", "anyone@BÜCHER.example", false},
	} {
		if got, err := d.MaySendAs(ctx, tc.user, tc.addr); err != nil || got != tc.want {
			t.Errorf("MaySendAs(%q, %q) = %v, %v; want %v", tc.user, tc.addr, got, err, tc.want)
		}
	}
	if got, err := d.Resolve("Élise@work.test"); err != nil || !slices.Equal(got, []string{"Élise@work.test"}) {
		t.Errorf("Resolve(Élise) = %q, %v", got, err)
	}
	if got, err := d.Resolve("x@bücher.example"); err != nil || !slices.Equal(got, []string{"x@xn--bcher-kva.example"}) {
		t.Errorf("Resolve(x@bücher.example) = %q, %v", got, err)
	}
	if _, err := d.Resolve("alice@wor\u212A.test"); !errors.Is(err, ErrNotLocal) {
		t.Errorf("Resolve(Kelvin domain): %v, want ErrNotLocal", err)
	}
}

func TestDirectoryExpandForward(t *testing.T) { eachBackend(t, testDirectoryExpandForward) }

// testDirectoryExpandForward: alias targets in other domains are
// forwarded to, beside the local mailboxes, once each; an alias whose
// targets are all remote exists and expands without error; postmaster
// forwarded elsewhere reaches someone.
func testDirectoryExpandForward(t *testing.T, open opener) {
	db := open(t, newClock(), nil)
	if err := db.Add("alice@example.org", "pw"); err != nil {
		t.Fatal(err)
	}
	cfg := DirectoryConfig{
		LocalDomains: []string{"example.org"},
		Aliases: map[string][]string{
			"fwd@example.org":        {"Carol@Remote.example"},
			"both@example.org":       {"alice@example.org", "fwd@example.org", "carol@remote.example", "dave@other.example"},
			"postmaster@example.org": {"admin@remote.example"},
			"dead@example.org":       {"nobody@example.org"},
		},
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	d := NewDirectory(db, cfg)
	ctx := context.Background()
	for addr, want := range map[string]Expansion{
		"fwd@example.org":   {Forward: []string{"Carol@Remote.example"}},
		"both@example.org":  {Mailboxes: []string{"alice@example.org"}, Forward: []string{"Carol@Remote.example", "dave@other.example"}},
		"alice@example.org": {Mailboxes: []string{"alice@example.org"}},
		"postmaster":        {Forward: []string{"admin@remote.example"}},
	} {
		got, err := d.Expand(addr)
		if err != nil || !slices.Equal(got.Mailboxes, want.Mailboxes) || !slices.Equal(got.Forward, want.Forward) {
			t.Errorf("Expand(%q) = %+v, %v; want %+v", addr, got, err, want)
		}
	}
	if boxes, err := d.Resolve("fwd@example.org"); err != nil || len(boxes) != 0 {
		t.Errorf("Resolve of a forwarding alias: %q, %v; want none, no error", boxes, err)
	}
	if _, err := d.Expand("dead@example.org"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Expand of an alias to nobody: %v, want ErrNotFound", err)
	}
	for addr, want := range map[string]bool{"fwd@example.org": true, "postmaster@example.org": true} {
		if got, err := d.RecipientExists(ctx, addr); err != nil || got != want {
			t.Errorf("RecipientExists(%q) = %v, %v", addr, got, err)
		}
	}
	if list, err := d.UnreachablePostmasters(ctx); err != nil || len(list) != 0 {
		t.Errorf("UnreachablePostmasters: %+v, %v; a postmaster forwarded elsewhere reaches someone", list, err)
	}
}

func TestDirectorySetConfig(t *testing.T) { eachBackend(t, testDirectorySetConfig) }

// testDirectorySetConfig: after SetConfig (a reload), lookups use the
// new aliases, grants and local domains at once, with either backend
// (PostgreSQL's cached merge included).
func testDirectorySetConfig(t *testing.T, open opener) {
	d, _ := testDirectory(t, open, "alice@example.org", "carol@example.net")
	ctx := context.Background()
	if ok, err := d.RecipientExists(ctx, "new@example.org"); err != nil || ok {
		t.Fatalf("new@ before: %v %v", ok, err)
	}
	d.SetConfig(DirectoryConfig{
		LocalDomains: []string{"example.org", "example.net", "added.example"},
		Aliases:      map[string][]string{"new@example.org": {"alice@example.org"}},
		SendAs:       map[string]SendAsGrant{"alice@example.org": {Addresses: []string{"boss@example.net"}}},
	})
	if ok, err := d.RecipientExists(ctx, "new@example.org"); err != nil || !ok {
		t.Fatalf("new@ after SetConfig: %v %v", ok, err)
	}
	if x, err := d.Expand("new@example.org"); err != nil || !slices.Equal(x.Mailboxes, []string{"alice@example.org"}) {
		t.Fatalf("expand new@: %v %v", x, err)
	}
	if ok, err := d.RecipientExists(ctx, "info@example.org"); err != nil || ok {
		t.Fatalf("info@, an alias no more: %v %v", ok, err)
	}
	if !d.IsLocalDomain("added.example") {
		t.Fatal("added.example not local")
	}
	if ok, err := d.MaySendAs(ctx, "alice@example.org", "boss@example.net"); err != nil || !ok {
		t.Fatalf("send-as grant: %v %v", ok, err)
	}
	if ok, err := d.MaySendAs(ctx, "carol@example.net", "ceo@example.org"); err != nil || ok {
		t.Fatalf("removed grant: %v %v", ok, err)
	}
}

// TestDirectorySetConfigConcurrent: lookups while the configuration is
// replaced see one configuration or the other, never a mix that fails
// (run with -race).
func TestDirectorySetConfigConcurrent(t *testing.T) {
	db := openTest(t, filepath.Join(t.TempDir(), "users.json"), newClock(), nil)
	if err := db.Add("alice@example.org", "pw"); err != nil {
		t.Fatal(err)
	}
	a := DirectoryConfig{LocalDomains: []string{"example.org"}, Aliases: map[string][]string{"x@example.org": {"alice@example.org"}}}
	b := DirectoryConfig{LocalDomains: []string{"example.org"}, Aliases: map[string][]string{"x@example.org": {"alice@example.org"}, "y@example.org": {"alice@example.org"}}}
	d := NewDirectory(db, a)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 200 {
			d.SetConfig([]DirectoryConfig{a, b}[i%2])
		}
	}()
	for {
		select {
		case <-done:
			return
		default:
		}
		if ok, err := d.RecipientExists(context.Background(), "x@example.org"); err != nil || !ok {
			t.Fatalf("x@ during SetConfig: %v %v", ok, err)
		}
		if x, err := d.Expand("x@example.org"); err != nil || len(x.Mailboxes) != 1 {
			t.Fatalf("expand x@ during SetConfig: %v %v", x, err)
		}
	}
}
