package userdb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"postern/internal/fsutil"
	"postern/internal/sasl"
	"postern/internal/testkit"
)

// fastArgon2 keeps tests quick; the parameters are still real Argon2id.
var fastArgon2 = Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1}

// testSCRAMIterations is the SCRAMIterations of openTest's DBs, that of
// Postern's default configuration.
const testSCRAMIterations = 10000

// newClock returns the injected clock of the tests, which moves only
// when told.
func newClock() *testkit.Clock {
	return testkit.NewClock(time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC))
}

func openTest(t testing.TB, path string, clk *testkit.Clock, mod func(*Options)) *DB {
	t.Helper()
	opts := Options{Now: clk.Now, Argon2: fastArgon2, SCRAMIterations: testSCRAMIterations, CacheTTL: 5 * time.Minute}
	if mod != nil {
		mod(&opts)
	}
	db, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestPHCRoundTrip(t *testing.T) {
	h := &hasher{params: fastArgon2, sem: make(chan struct{}, 1), count: func() {}}
	s, err := h.hash(context.Background(), "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("PHC string %q", s)
	}
	p, err := parsePHC(s)
	if err != nil {
		t.Fatal(err)
	}
	if p.String() != s || p.params != fastArgon2 || len(p.salt) != saltLen || len(p.key) != keyLen {
		t.Fatalf("round trip: %q -> %+v -> %q", s, p, p.String())
	}
	for pw, want := range map[string]bool{"correct horse": true, "correct horse ": false, "Correct horse": false, "": false} {
		if ok, err := h.verify(context.Background(), p, pw); err != nil || ok != want {
			t.Errorf("verify(%q) = %v, %v; want %v", pw, ok, err, want)
		}
	}
	// The default parameters write what the brief promises.
	d := &hasher{params: Argon2Params{Time: 2, MemoryKiB: 64 * 1024, Threads: 1}, sem: make(chan struct{}, 1), count: func() {}}
	s, err = d.hash(context.Background(), "x")
	if err != nil || !strings.HasPrefix(s, "$argon2id$v=19$m=65536,t=2,p=1$") {
		t.Errorf("default PHC %q, %v", s, err)
	}
}

func TestPHCKnownVector(t *testing.T) {
	// Produced by the reference argon2 CLI:
	// echo -n password | argon2 somesalt -id -t 2 -m 16 -p 1 -l 32
	const s = "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"
	p, err := parsePHC(s)
	if err != nil {
		t.Fatal(err)
	}
	h := &hasher{sem: make(chan struct{}, 1), count: func() {}}
	if ok, _ := h.verify(context.Background(), p, "password"); !ok {
		t.Error("reference vector does not verify")
	}
	if ok, _ := h.verify(context.Background(), p, "passwore"); ok {
		t.Error("wrong password verifies")
	}
}

func TestParsePHCRefuses(t *testing.T) {
	const salt, key = "c29tZXNhbHRzb21lc2FsdA", "CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"
	good := "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key
	if _, err := parsePHC(good); err != nil {
		t.Fatalf("good string refused: %v", err)
	}
	for _, s := range []string{
		"",
		"plaintext",
		"$argon2i$v=19$m=64,t=1,p=1$" + salt + "$" + key,
		"$argon2d$v=19$m=64,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=16$m=64,t=1,p=1$" + salt + "$" + key,
		"$argon2id$m=64,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=19$t=1,m=64,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=1,k=2$" + salt + "$" + key,
		"$argon2id$v=19$m=064,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=+64,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=-64,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=0,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=0$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=256$" + salt + "$" + key,
		"$argon2id$v=19$m=7,t=1,p=1$" + salt + "$" + key,          // m < 8p
		"$argon2id$v=19$m=4294967295,t=1,p=1$" + salt + "$" + key, // 4 TiB
		"$argon2id$v=19$m=64,t=1000,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=99999999999,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "=$" + key,
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key + "=",
		"$argon2id$v=19$m=64,t=1,p=1$c2FsdA$" + key,             // 4-byte salt
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$c2hvcnQ",      // 5-byte hash
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key + "$", // extra field
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$!!!!",
		"argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key + "$x",
		"$argon2id$v=19$m=64,t=1,p=1$" + salt,
		"$argon2id$v=19$m=64,t=1,p=1$" + salt[:10] + "\n" + salt[10:] + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key[:10] + "\r" + key[10:],
	} {
		if _, err := parsePHC(s); err == nil {
			t.Errorf("accepted %q", s)
		} else if strings.Contains(err.Error(), key) {
			t.Errorf("error %q repeats the hash", err)
		}
	}
}

func TestOpenCreatesPrivateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.json")
	db := openTest(t, path, newClock(), nil)
	checkMode := func() {
		t.Helper()
		for _, p := range []string{path, lockPath(path)} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("%s mode %v, want 0600", p, fi.Mode().Perm())
			}
		}
	}
	checkMode()
	if len(db.List()) != 0 {
		t.Error("new DB not empty")
	}
	if err := db.Add("alice@Example.ORG", "pw-alice"); err != nil {
		t.Fatal(err)
	}
	checkMode()
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), `"alice@example.org"`) || strings.Contains(string(b), "pw-alice") {
		t.Errorf("file content:\n%s", b)
	}
	// No temporary files left behind.
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 2 {
		t.Errorf("directory holds %d entries, want users.json and users.lock", len(ents))
	}
	if lockPath("/d/users.json") != "/d/users.lock" || lockPath("/d/users") != "/d/users.lock" {
		t.Error("lockPath")
	}
}

// TestOpenOwner: with Options.Owner (root writing for a server that runs
// as another user), the users file and its lock file belong to the owner
// from the start, and after each change, even when root made them first.
func TestOpenOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: only root may give a file to another user")
	}
	path := filepath.Join(t.TempDir(), "users.json")
	nobody := &fsutil.Owner{UID: 65534, GID: 65534}
	checkOwner := func(when string) {
		t.Helper()
		for _, p := range []string{path, lockPath(path)} {
			var st syscall.Stat_t
			if err := syscall.Stat(p, &st); err != nil {
				t.Fatal(err)
			}
			if st.Uid != 65534 || st.Gid != 65534 {
				t.Errorf("%s: %s belongs to %d:%d, want 65534:65534", when, filepath.Base(p), st.Uid, st.Gid)
			}
		}
	}
	db := openTest(t, path, newClock(), func(o *Options) { o.Owner = nobody })
	checkOwner("open")
	// Files root made before (without an owner) are given away at the
	// next change.
	os.Chown(path, 0, 0)
	os.Chown(lockPath(path), 0, 0)
	if err := db.Add("alice@example.org", "pw-alice"); err != nil {
		t.Fatal(err)
	}
	checkOwner("add")
	if err := db.SetPassword("alice@example.org", "pw-alice-2"); err != nil {
		t.Fatal(err)
	}
	checkOwner("passwd")
	if err := db.Delete("alice@example.org"); err != nil {
		t.Fatal(err)
	}
	checkOwner("delete")
}

func TestAddSetDeleteLookup(t *testing.T) { eachBackend(t, testAddSetDeleteLookup) }

func testAddSetDeleteLookup(t *testing.T, open opener) {
	clk := newClock()
	db := open(t, clk, nil)
	if err := db.Add("Alice@Example.ORG", "pw1"); err != nil {
		t.Fatal(err)
	}
	for _, dup := range []string{"alice@example.org", "ALICE@EXAMPLE.ORG"} {
		if err := db.Add(dup, "x"); !errors.Is(err, ErrExists) {
			t.Errorf("Add(%s) = %v, want ErrExists", dup, err)
		}
	}
	u, ok := db.Lookup("aLiCe@example.org")
	if !ok || u.Address != "Alice@example.org" || !u.Created.Equal(clk.Now()) || !u.Updated.Equal(clk.Now()) {
		t.Fatalf("Lookup = %+v, %v", u, ok)
	}
	clk.Advance(time.Hour)
	if err := db.SetPassword("alice@example.org", "pw2"); err != nil {
		t.Fatal(err)
	}
	u, _ = db.Lookup("alice@example.org")
	if u.Updated.Sub(u.Created) != time.Hour {
		t.Errorf("Updated %v Created %v", u.Updated, u.Created)
	}
	if err := db.SetPassword("bob@example.org", "pw"); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetPassword(missing) = %v", err)
	}
	for _, bad := range []string{"", strings.Repeat("x", MaxPasswordLen+1), "a\x00b", "\xff\xfe"} {
		if err := db.SetPassword("alice@example.org", bad); !errors.Is(err, ErrInvalidPassword) {
			t.Errorf("SetPassword(%q) = %v", bad, err)
		} else if bad != "" && strings.Contains(err.Error(), bad) {
			t.Errorf("error repeats the password: %v", err)
		}
	}
	if err := db.Add("bob@example.org", strings.Repeat("x", MaxPasswordLen)); err != nil {
		t.Errorf("%d-octet password: %v", MaxPasswordLen, err)
	}
	if got := db.List(); len(got) != 2 || got[0].Address != "Alice@example.org" || got[1].Address != "bob@example.org" {
		t.Errorf("List = %+v", got)
	}
	if err := db.Delete("ALICE@example.org"); err != nil {
		t.Fatal(err)
	}
	if db.Exists("alice@example.org") {
		t.Error("deleted user exists")
	}
	if err := db.Delete("alice@example.org"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Delete twice = %v", err)
	}
	db.Close()
	if err := db.Add("carol@example.org", "pw"); !errors.Is(err, ErrClosed) {
		t.Errorf("Add after Close = %v", err)
	}
	if _, err := db.CheckPassword(context.Background(), "bob@example.org", "pw"); !errors.Is(err, sasl.ErrTemporary) {
		t.Errorf("CheckPassword after Close = %v", err)
	}
}

func TestNormalizeAddress(t *testing.T) {
	for in, want := range map[string]string{
		"alice@example.org":            "alice@example.org",
		"Alice.B+tag@EXAMPLE.Org":      "Alice.B+tag@example.org",
		"ünïcødé@bücher.example":       "ünïcødé@bücher.example",
		"x@xn--bcher-kva.example":      "x@xn--bcher-kva.example",
		"o'neil_1-2@a-b.c":             "o'neil_1-2@a-b.c",
		"p@localhost":                  "p@localhost",
		strings.Repeat("l", 64) + "@d": strings.Repeat("l", 64) + "@d",
	} {
		if got, err := NormalizeAddress(in); err != nil || got != want {
			t.Errorf("NormalizeAddress(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{
		"", "alice", "@example.org", "alice@", "a@b@c", "al ice@example.org",
		"alice@exa mple.org", "alice\t@example.org", "alice\r\n@example.org",
		"ali\x00ce@example.org", "ali\x7fce@example.org", "\xff@example.org",
		"../../etc@example.org", "a/b@example.org", `a\b@example.org`, `"a"@example.org`,
		".a@example.org", "a.@example.org", "a..b@example.org", "a@example..org",
		"a@.example.org", "a@example.org.", "a@-example.org", "a@exa_mple.org",
		"a@exam/ple.org", "a@[127.0.0.1]", "a\u00a0b@example.org", "a\u2028@example.org",
		strings.Repeat("l", 65) + "@d",
		"a@" + strings.Repeat("d", 64) + ".org",
		"a@" + strings.Repeat("d.", 127) + "org",
	} {
		if got, err := NormalizeAddress(in); !errors.Is(err, ErrInvalidAddress) {
			t.Errorf("NormalizeAddress(%q) = %q, %v; want ErrInvalidAddress", in, got, err)
		}
	}
}

func TestGeneratePassword(t *testing.T) {
	seen := make(map[string]bool)
	for range 100 {
		p, err := GeneratePassword()
		if err != nil {
			t.Fatal(err)
		}
		if len(p) != GeneratedPasswordLen || strings.Trim(p, passwordAlphabet) != "" || strings.ContainsAny(p, "0O1lI") {
			t.Fatalf("password %q", p)
		}
		if seen[p] {
			t.Fatalf("password %q twice", p)
		}
		seen[p] = true
		if err := CheckNewPassword(p); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCheckNewPasswordMessages: what `postern user add` prints for each
// password refused, never the password itself.
func TestCheckNewPasswordMessages(t *testing.T) {
	for in, want := range map[string]string{
		"":                       "userdb: empty password: userdb: invalid password",
		strings.Repeat("p", 256): "userdb: password longer than 255 octets: userdb: invalid password",
		"secret\x00word":         "userdb: password contains NUL: userdb: invalid password",
		"secret\xffword":         "userdb: password is not UTF-8: userdb: invalid password",
	} {
		err := CheckNewPassword(in)
		if !errors.Is(err, ErrInvalidPassword) || err.Error() != want {
			t.Errorf("CheckNewPassword(%.20q) = %v, want %q", in, err, want)
		}
	}
}

func TestCorruptFileKeepsUsers(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "users.json")
	db := openTest(t, path, clk, nil)
	if err := db.Add("alice@example.org", "pw"); err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(path)
	for _, bad := range []string{
		"{",
		`{"version":3,"users":[]}`,
		`{"version":1,"users":[],"extra":1}`,
		`{"version":1,"users":[]} {}`,
		`{"version":1,"users":[{"address":"bob@example.org","password":"$argon2id$v=19$m=1,t=1,p=1$x$y"}]}`,
		`{"version":1,"users":[{"address":"bob@EXAMPLE.org","password":` + fmt.Sprintf("%q", firstHash(t, good)) + `}]}`,
		`{"version":1,"users":[{"address":"bob","password":` + fmt.Sprintf("%q", firstHash(t, good)) + `}]}`,
		`{"version":1,"users":[{"address":"b@x.org","password":` + fmt.Sprintf("%q", firstHash(t, good)) + `},` +
			`{"address":"B@x.org","password":` + fmt.Sprintf("%q", firstHash(t, good)) + `}]}`,
	} {
		if err := os.WriteFile(path+".new", []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Rename(path+".new", path)
		if err := db.Reload(); err == nil {
			t.Errorf("Reload accepted %s", bad)
		}
		clk.Advance(2 * time.Second)
		if !db.Exists("alice@example.org") {
			t.Fatalf("user lost after bad file %s", bad)
		}
		if _, err := Open(path, Options{Argon2: fastArgon2, SCRAMIterations: MinSCRAMIterations}); err == nil {
			t.Errorf("Open accepted %s", bad)
		}
		if err := db.Add("carol@example.org", "pw"); err == nil {
			t.Errorf("Add wrote over a bad file %s", bad)
		}
	}
}

// firstHash returns the first PHC string in a users file.
func firstHash(t *testing.T, file []byte) string {
	t.Helper()
	users, err := parseFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range users {
		return r.hash
	}
	t.Fatal("no users")
	return ""
}

func TestSecondDBSeesChanges(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "users.json")
	server := openTest(t, path, clk, nil)
	cli := openTest(t, path, clk, nil)
	if server.Exists("alice@example.org") {
		t.Fatal("exists before Add")
	}
	if err := cli.Add("alice@example.org", "pw"); err != nil {
		t.Fatal(err)
	}
	// Within the check interval the server has not looked yet.
	if server.Exists("alice@example.org") {
		t.Log("seen before the check interval (allowed, but unexpected)")
	}
	clk.Advance(reloadCheckInterval)
	if !server.Exists("alice@example.org") {
		t.Fatal("second DB's Add not seen after the check interval")
	}
	// Reload sees a change at once.
	if err := cli.Delete("alice@example.org"); err != nil {
		t.Fatal(err)
	}
	if err := server.Reload(); err != nil {
		t.Fatal(err)
	}
	if server.Exists("alice@example.org") {
		t.Fatal("Delete not seen after Reload")
	}
}

// TestHelperProcess is not a test: TestOtherProcesses runs the test binary
// with USERDB_HELPER set, and this adds users from that other process.
func TestHelperProcess(t *testing.T) {
	spec := os.Getenv("USERDB_HELPER")
	if spec == "" {
		t.Skip("helper process only")
	}
	path, prefix, _ := strings.Cut(spec, "|")
	db, err := Open(path, Options{Argon2: fastArgon2, SCRAMIterations: MinSCRAMIterations})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := db.Add(fmt.Sprintf("%s%d@example.org", prefix, i), "pw"); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOtherProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("runs subprocesses")
	}
	clk := newClock()
	path := filepath.Join(t.TempDir(), "users.json")
	server := openTest(t, path, clk, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for p := range 3 {
		wg.Go(func() {
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
			cmd.Env = append(os.Environ(), fmt.Sprintf("USERDB_HELPER=%s|proc%d-", path, p))
			if out, err := cmd.CombinedOutput(); err != nil {
				errs <- fmt.Errorf("helper %d: %v\n%s", p, err, out)
			}
		})
	}
	for g := range 5 { // and writers in this process, at the same time
		wg.Go(func() {
			db, err := Open(path, Options{Argon2: fastArgon2, SCRAMIterations: MinSCRAMIterations})
			if err != nil {
				errs <- err
				return
			}
			defer db.Close()
			if err := db.Add(fmt.Sprintf("local%d@example.org", g), "pw"); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	clk.Advance(reloadCheckInterval)
	if n := len(server.List()); n != 3*5+5 {
		t.Errorf("server sees %d users, want 20", n)
	}
	if _, err := server.CheckPassword(context.Background(), "proc2-4@example.org", "pw"); err != nil {
		t.Errorf("user added by another process cannot log in: %v", err)
	}
}

func TestConcurrentWritersLoseNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.json")
	clk := newClock()
	shared := openTest(t, path, clk, nil)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			db, err := Open(path, Options{Now: clk.Now, Argon2: fastArgon2, SCRAMIterations: testSCRAMIterations, CacheTTL: 5 * time.Minute})
			if err != nil {
				t.Error(err)
				return
			}
			defer db.Close()
			if err := db.Add(fmt.Sprintf("user%d@example.org", i), "pw"); err != nil {
				t.Error(err)
			}
			// Writers sharing one DB are serialized too.
			if err := shared.Add(fmt.Sprintf("shared%d@example.org", i), "pw"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	fresh := openTest(t, path, clk, nil)
	if n := len(fresh.List()); n != 40 {
		t.Errorf("%d users after 40 concurrent Adds", n)
	}
}
