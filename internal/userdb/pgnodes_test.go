package userdb

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"postern/internal/sasl"
)

// TestMigrationsTwiceAndConcurrently: nodes opening a fresh database at the
// same moment apply each migration once; opening again changes nothing.
func TestMigrationsTwiceAndConcurrently(t *testing.T) {
	dsn := testDatabase(t)
	clk := newClock()
	var wg sync.WaitGroup
	dbs := make([]*DB, 4)
	errs := make([]error, 4)
	for i := range dbs {
		wg.Go(func() {
			dbs[i], errs[i] = OpenPostgres(context.Background(), dsn, Options{Now: clk.Now, Argon2: fastArgon2, SCRAMIterations: testSCRAMIterations, CacheTTL: 5 * time.Minute})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		defer dbs[i].Close()
	}
	versions := func() []int {
		t.Helper()
		conn, err := pgx.Connect(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		rows, _ := conn.Query(context.Background(), `SELECT version FROM schema_migrations ORDER BY version`)
		v, err := pgx.CollectRows(rows, pgx.RowTo[int])
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	want := []int{1, 2, 3, 4}
	if v := versions(); !slices.Equal(v, want) || schemaVersion() != 4 {
		t.Fatalf("schema_migrations %v, want %v", v, want)
	}
	if err := dbs[0].Add("alice@example.org", "pw"); err != nil {
		t.Fatal(err)
	}
	again := openPGTest(t, dsn, clk, nil)
	if v := versions(); !slices.Equal(v, want) {
		t.Fatalf("after a second open: %v", v)
	}
	if !again.Exists("ALICE@example.org") {
		t.Error("user lost by a second migration run")
	}
	// migrate itself, run again on an up-to-date schema, changes nothing.
	if err := migrate(context.Background(), again.st.(*pgStore).pool, again.log); err != nil {
		t.Fatal(err)
	}
	if v := versions(); !slices.Equal(v, want) {
		t.Fatalf("after migrate again: %v", v)
	}
}

// TestTwoNodesPasswordChange: a password changed on one node is refused on
// another at once, though the other had it in its credential cache; a
// deleted user too. No clock moves.
func TestTwoNodesPasswordChange(t *testing.T) {
	dsn := testDatabase(t)
	clk := newClock()
	a := openPGTest(t, dsn, clk, nil)
	b := openPGTest(t, dsn, clk, nil)
	ctx := context.Background()
	if err := a.Add("alice@example.org", "old"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := b.CheckPassword(ctx, "alice@example.org", "old"); err != nil {
			t.Fatal(err)
		}
	}
	before := b.hashCount()
	if _, err := b.CheckPassword(ctx, "alice@example.org", "old"); err != nil || b.hashCount() != before {
		t.Fatalf("second login on b not served from its cache: %v", err)
	}
	oldSCRAM, _ := b.SCRAM(ctx, "alice@example.org", sasl.HashSHA256)

	if err := a.SetPassword("alice@example.org", "new", SetOptions{CRAMMD5: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CheckPassword(ctx, "alice@example.org", "old"); !errors.Is(err, sasl.ErrInvalidCredentials) {
		t.Errorf("old password on the other node: %v", err)
	}
	if _, err := b.CheckPassword(ctx, "alice@example.org", "new"); err != nil {
		t.Errorf("new password on the other node: %v", err)
	}
	if c, err := b.SCRAM(ctx, "alice@example.org", sasl.HashSHA256); err != nil || string(c.StoredKey) == string(oldSCRAM.StoredKey) {
		t.Errorf("other node's SCRAM verifier not the new one: %v", err)
	}
	if _, err := b.CRAMMD5(ctx, "alice@example.org"); err != nil {
		t.Errorf("other node's CRAM-MD5: %v", err)
	}
	if err := a.Delete("alice@example.org"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CheckPassword(ctx, "alice@example.org", "new"); !errors.Is(err, sasl.ErrInvalidCredentials) {
		t.Errorf("deleted user on the other node: %v", err)
	}
	if err := b.Add("Alice@example.org", "x"); err != nil {
		t.Errorf("re-add on the other node: %v", err)
	}
	if err := a.Add("ALICE@example.org", "y"); !errors.Is(err, ErrExists) {
		t.Errorf("duplicate across nodes, ignoring case: %v", err)
	}
}

// TestDirectoryFromDatabase: aliases and send-as grants kept in
// PostgreSQL add to the configured ones, and a Directory sees changes
// after DirectoryConfig.Refresh.
func TestDirectoryFromDatabase(t *testing.T) {
	dsn := testDatabase(t)
	clk := newClock()
	db := openPGTest(t, dsn, clk, nil)
	admin := openPGTest(t, dsn, clk, nil) // `postern user alias ...` elsewhere
	ctx := context.Background()
	for _, u := range []string{"alice@example.org", "bob@example.org", "carol@example.net"} {
		if err := db.Add(u, "pw"); err != nil {
			t.Fatal(err)
		}
	}
	if err := admin.AddAlias(ctx, "Team@Example.org", "alice@example.org", "Bob@example.org"); err != nil {
		t.Fatal(err)
	}
	if err := admin.AddAlias(ctx, "team@example.org", "bob@example.org", "carol@example.net"); err != nil {
		t.Fatal(err) // bob again: kept once
	}
	if err := admin.AddAlias(ctx, "info@example.org", "carol@example.net"); err != nil {
		t.Fatal(err) // adds to the configured info@
	}
	if err := admin.AddSendAs(ctx, "alice@example.org", SendAsGrant{Addresses: []string{"CEO@example.org"}, Domains: []string{"News.example.org"}}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []error{
		admin.AddAlias(ctx, "x@example.org"),
		admin.AddAlias(ctx, "bad", "alice@example.org"),
		admin.AddAlias(ctx, "x@example.org", "../a@example.org"),
		admin.AddSendAs(ctx, "alice@example.org", SendAsGrant{}),
		admin.AddSendAs(ctx, "alice@example.org", SendAsGrant{Domains: []string{"a b"}}),
	} {
		if bad == nil {
			t.Error("bad alias or grant accepted")
		}
	}
	got, err := admin.Aliases(ctx)
	if err != nil || len(got) != 2 || got[0].Address != "info@example.org" || got[1].Address != "Team@example.org" ||
		!slices.Equal(got[1].Targets, []string{"alice@example.org", "Bob@example.org", "carol@example.net"}) {
		t.Errorf("Aliases = %+v, %v", got, err)
	}
	grants, err := admin.SendAsGrants(ctx)
	if g := grants["alice@example.org"]; err != nil || !slices.Equal(g.Addresses, []string{"ceo@example.org"}) || !slices.Equal(g.Domains, []string{"news.example.org"}) {
		t.Errorf("SendAsGrants = %+v, %v", grants, err)
	}

	dir := NewDirectory(db, DirectoryConfig{
		LocalDomains: []string{"example.org", "example.net"},
		Aliases:      map[string][]string{"info@example.org": {"bob@example.org"}},
		SendAs:       map[string]SendAsGrant{"bob@example.org": {Addresses: []string{"boss@example.org"}}},
		Refresh:      10 * time.Second,
	})
	if ok, err := dir.RecipientExists(ctx, "TEAM@example.org"); !ok || err != nil {
		t.Errorf("alias from the database: %v, %v", ok, err)
	}
	if boxes, err := dir.Resolve("team@example.org"); err != nil || !slices.Equal(boxes, []string{"alice@example.org", "bob@example.org", "carol@example.net"}) {
		t.Errorf("Resolve(team) = %q, %v", boxes, err)
	}
	if boxes, err := dir.Resolve("info@example.org"); err != nil || !slices.Equal(boxes, []string{"bob@example.org", "carol@example.net"}) {
		t.Errorf("Resolve(info), configured and database targets = %q, %v", boxes, err)
	}
	for _, tc := range []struct {
		user, addr string
		want       bool
	}{
		{"alice@example.org", "ceo@example.org", true},
		{"alice@example.org", "x@news.example.org", true},
		{"alice@example.org", "team@example.org", true}, // a direct target
		{"bob@example.org", "boss@example.org", true},   // configured
		{"bob@example.org", "ceo@example.org", false},
		{"carol@example.net", "info@example.org", true},
	} {
		if got, err := dir.MaySendAs(ctx, tc.user, tc.addr); err != nil || got != tc.want {
			t.Errorf("MaySendAs(%s, %s) = %v, %v", tc.user, tc.addr, got, err)
		}
	}

	// Changes show after Refresh, by the injected clock.
	if err := admin.DeleteAlias(ctx, "TEAM@example.org", "alice@example.org"); err != nil {
		t.Fatal(err)
	}
	if err := admin.DeleteSendAs(ctx, "alice@example.org", SendAsGrant{}); err != nil {
		t.Fatal(err)
	}
	if ok, _ := dir.MaySendAs(ctx, "alice@example.org", "ceo@example.org"); !ok {
		t.Error("grant withdrawn before Refresh (allowed, but the cache is not working)")
	}
	clk.Advance(10 * time.Second)
	if ok, _ := dir.MaySendAs(ctx, "alice@example.org", "ceo@example.org"); ok {
		t.Error("withdrawn grant still counts after Refresh")
	}
	if boxes, err := dir.Resolve("team@example.org"); err != nil || !slices.Equal(boxes, []string{"bob@example.org", "carol@example.net"}) {
		t.Errorf("Resolve(team) after a target was removed = %q, %v", boxes, err)
	}
	if err := admin.DeleteAlias(ctx, "team@example.org"); err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{
		admin.DeleteAlias(ctx, "team@example.org"),
		admin.DeleteSendAs(ctx, "alice@example.org", SendAsGrant{}),
		admin.DeleteAlias(ctx, "info@example.org", "alice@example.org"),
	} {
		if !errors.Is(err, ErrNoEntry) {
			t.Errorf("delete of nothing: %v", err)
		}
	}
	clk.Advance(10 * time.Second)
	if ok, err := dir.RecipientExists(ctx, "team@example.org"); ok || err != nil {
		t.Errorf("deleted alias exists: %v, %v", ok, err)
	}

	// When the database goes away, the last read aliases still answer and
	// user lookups fail as temporary errors, never as "no such user".
	db.st.(*pgStore).pool.Close()
	clk.Advance(10 * time.Second)
	if _, err := dir.RecipientExists(ctx, "alice@example.org"); err == nil {
		t.Error("RecipientExists without a database did not fail")
	}
	if _, err := dir.Resolve("info@example.org"); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("Resolve without a database: %v", err)
	}
	if _, err := db.CheckPassword(ctx, "alice@example.org", "pw"); !errors.Is(err, sasl.ErrTemporary) {
		t.Errorf("CheckPassword without a database: %v", err)
	}
}

func TestFileBackendHasNoDirectoryStore(t *testing.T) {
	db := openTest(t, filepath.Join(t.TempDir(), "users.json"), newClock(), nil)
	ctx := context.Background()
	for _, err := range []error{
		db.AddAlias(ctx, "a@example.org", "b@example.org"),
		db.DeleteAlias(ctx, "a@example.org"),
		db.AddSendAs(ctx, "a@example.org", SendAsGrant{Domains: []string{"example.org"}}),
		db.DeleteSendAs(ctx, "a@example.org", SendAsGrant{}),
	} {
		if !errors.Is(err, ErrConfigDirectory) {
			t.Errorf("file backend: %v", err)
		}
	}
	if _, err := db.Aliases(ctx); !errors.Is(err, ErrConfigDirectory) {
		t.Errorf("Aliases: %v", err)
	}
	if _, err := db.SendAsGrants(ctx); !errors.Is(err, ErrConfigDirectory) {
		t.Errorf("SendAsGrants: %v", err)
	}
}

// BenchmarkDirectoryPostgres measures the lookups a session makes per
// recipient with the PostgreSQL store: aliases from the Directory's
// snapshot, the user from one indexed query.
func BenchmarkDirectoryPostgres(b *testing.B) {
	dsn := testDatabase(b)
	db := openPGTest(b, dsn, newClock(), nil)
	ctx := context.Background()
	if err := db.Add("alice@example.org", "pw"); err != nil {
		b.Fatal(err)
	}
	if err := db.AddAlias(ctx, "team@example.org", "alice@example.org"); err != nil {
		b.Fatal(err)
	}
	dir := NewDirectory(db, DirectoryConfig{LocalDomains: []string{"example.org"}})
	b.Run("RecipientExists/user", func(b *testing.B) {
		for b.Loop() {
			if ok, err := dir.RecipientExists(ctx, "alice@example.org"); !ok || err != nil {
				b.Fatal(ok, err)
			}
		}
	})
	b.Run("RecipientExists/alias", func(b *testing.B) {
		for b.Loop() {
			if ok, err := dir.RecipientExists(ctx, "team@example.org"); !ok || err != nil {
				b.Fatal(ok, err)
			}
		}
	})
	b.Run("MaySendAs/alias", func(b *testing.B) {
		for b.Loop() {
			if ok, err := dir.MaySendAs(ctx, "alice@example.org", "team@example.org"); !ok || err != nil {
				b.Fatal(ok, err)
			}
		}
	})
	b.Run("Aliases/query", func(b *testing.B) { // what a per-lookup query would cost
		for b.Loop() {
			if _, err := db.Aliases(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestMigrationRekey: keys stored by an earlier Postern (strings.ToLower
// of the address, which folds non-ASCII letters) become userKey's, so
// that the users, aliases and grants are found by the new comparison; a
// row whose new key another has keeps its old one (issue 12, §8).
func TestMigrationRekey(t *testing.T) {
	dsn := testDatabase(t)
	clk := newClock()
	db := openPGTest(t, dsn, clk, nil)
	ctx := context.Background()
	for _, u := range []string{"Élise@example.org", "é@example.org", "e\u0301@example.org", "bob@example.org"} {
		if err := db.Add(u, "pw"); err != nil && u != "e\u0301@example.org" {
			t.Fatal(err)
		}
	}
	if err := db.AddAlias(ctx, "Équipe@example.org", "Élise@example.org"); err != nil {
		t.Fatal(err)
	}
	if err := db.AddSendAs(ctx, "Élise@example.org", SendAsGrant{Domains: []string{"example.net"}}); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// As the earlier Postern stored them; NFD "e\u0301" had a key of its own.
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`UPDATE users SET key = $1 WHERE address = $2`, []any{strings.ToLower("Élise@example.org"), "Élise@example.org"}},
		{`INSERT INTO users (key, address, password, created, updated) SELECT $1, $1, password, created, updated FROM users WHERE address = 'bob@example.org'`, []any{"e\u0301@example.org"}},
		{`UPDATE aliases SET alias_key = $1, target_key = $2`, []any{"équipe@example.org", "élise@example.org"}},
		{`UPDATE send_as SET user_key = $1`, []any{"élise@example.org"}},
		{`DELETE FROM schema_migrations WHERE version = 4`, nil},
	} {
		if _, err := conn.Exec(ctx, q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
	if db.Exists("Élise@example.org") {
		t.Fatal("the old key was not in place")
	}
	if err := migrate(ctx, db.st.(*pgStore).pool, db.log); err != nil {
		t.Fatal(err)
	}
	if !db.Exists("Élise@example.org") || db.Exists("élise@example.org") {
		t.Error("Élise not found by her new key, or found as élise")
	}
	d := NewDirectory(db, DirectoryConfig{LocalDomains: []string{"example.org"}})
	if ok, err := d.RecipientExists(ctx, "Équipe@example.org"); err != nil || !ok {
		t.Errorf("alias after rekey: %v, %v", ok, err)
	}
	if ok, err := d.MaySendAs(ctx, "Élise@example.org", "x@example.net"); err != nil || !ok {
		t.Errorf("send-as grant after rekey: %v, %v", ok, err)
	}
	var keys []string
	rows, _ := conn.Query(ctx, `SELECT key FROM users WHERE address IN ($1, $2) ORDER BY key`, "é@example.org", "e\u0301@example.org")
	keys, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(keys) != 2 || !slices.Contains(keys, "é@example.org") {
		t.Errorf("colliding users' keys %q, %v: want both kept, one of them é@example.org", keys, err)
	}
}
