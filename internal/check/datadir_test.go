package check

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"postern/internal/config"
	"postern/internal/fsutil"
)

// dataDirResults runs the data-dir check of postern check on cfg.
func dataDirResults(cfg *config.Config) []Result {
	c := &Checker{Config: cfg}
	c.checkDataDir()
	return c.out
}

// TestCheckDataDirDeep: postern check names each kind of problem in the
// data directory once, with the entries and the fix, and passes over
// what is as it should be (a public certificate, the admin socket, a
// link).
func TestCheckDataDirDeep(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	for _, d := range []string{"tls", "queue", "dkim/example.com"} {
		os.MkdirAll(filepath.Join(dir, d), 0o700)
	}
	files := map[string]os.FileMode{
		"users.json":                      0o600,
		"users.lock":                      0o600,
		"tls/cert.pem":                    0o644, // public: fine
		"tls/key.pem":                     0o644, // a key everyone may read
		"dkim/example.com/s1.rsa.pem":     0o640, // a key the group may read
		"queue/state.db":                  0o666, // writable by everyone
		"dkim/example.com/s2.ed25519.pem": 0o600,
	}
	for f, m := range files {
		os.WriteFile(filepath.Join(dir, f), []byte("x"), m)
		os.Chmod(filepath.Join(dir, f), m) // past the umask
	}
	os.Chmod(filepath.Join(dir, "queue"), 0o777)
	os.Symlink("/etc/passwd", filepath.Join(dir, "link"))
	l, err := net.Listen("unix", filepath.Join(dir, "admin.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	os.Chmod(filepath.Join(dir, "admin.sock"), 0o660)
	cfg := &config.Config{DataDir: dir}

	rs := dataDirResults(cfg)
	want := []struct{ status, msg, fix string }{
		{StatusFail, dir + ": 2 entries are writable by the group or others: queue (mode 0777), queue/state.db (mode 0666)", "chmod -R go-w " + dir},
		{StatusFail, dir + ": 1 secret file (a key or password hashes) is readable by everyone: tls/key.pem (mode 0644)", "chmod 600 " + filepath.Join(dir, "tls/key.pem")},
		{StatusWarn, dir + ": 1 secret file (a key or password hashes) is readable by the group: dkim/example.com/s1.rsa.pem (mode 0640)", "chmod 600 " + filepath.Join(dir, "dkim/example.com/s1.rsa.pem")},
	}
	if len(rs) != len(want) {
		t.Fatalf("%d results, want %d: %+v", len(rs), len(want), rs)
	}
	for i, w := range want {
		if r := rs[i]; r.Check != "data-dir" || r.Status != w.status || r.Message != w.msg || r.Fix != w.fix {
			t.Errorf("result %d:\n%+v\nwant %s %q fix %q", i, r, w.status, w.msg, w.fix)
		}
	}

	// Put right: one OK line.
	os.Chmod(filepath.Join(dir, "queue"), 0o700)
	os.Chmod(filepath.Join(dir, "queue/state.db"), 0o600)
	os.Chmod(filepath.Join(dir, "tls/key.pem"), 0o600)
	os.Chmod(filepath.Join(dir, "dkim/example.com/s1.rsa.pem"), 0o600)
	rs = dataDirResults(cfg)
	if len(rs) != 1 || rs[0].Status != StatusOK || !strings.Contains(rs[0].Message, "and its 13 entries belong to the server's user") {
		t.Errorf("all well: %+v", rs)
	}

	// Not there yet: serve will create it.
	rs = dataDirResults(&config.Config{DataDir: filepath.Join(dir, "missing")})
	if len(rs) != 1 || rs[0].Status != StatusOK || !strings.Contains(rs[0].Message, "does not exist yet: postern serve creates it") {
		t.Errorf("missing: %+v", rs)
	}
	// A user that does not exist.
	rs = dataDirResults(&config.Config{DataDir: dir, Process: config.Process{User: "no-such-user-postern"}})
	if len(rs) != 1 || rs[0].Status != StatusFail || !strings.Contains(rs[0].Message, `user = "no-such-user-postern"`) {
		t.Errorf("unknown user: %+v", rs)
	}
}

// TestCheckDataDirOwner: as root, files root made for a server that runs
// as nobody (the mistake of issue 8: a command run as root before it
// gave its files away) are reported, with the chown that fixes them.
func TestCheckDataDirOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: only root may give a file to another user")
	}
	dir := filepath.Join(t.TempDir(), "data")
	os.MkdirAll(filepath.Join(dir, "dkim", "example.com"), 0o700)
	for _, f := range []string{"users.json", "users.lock", "dkim/example.com/s1.rsa.pem"} {
		os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600)
	}
	for _, p := range []string{"", "dkim", "dkim/example.com", "users.json"} {
		os.Chown(filepath.Join(dir, p), 65534, 65534)
	}
	cfg := &config.Config{DataDir: dir, Process: config.Process{User: "nobody"}}
	rs := dataDirResults(cfg)
	if len(rs) != 1 || rs[0].Status != StatusFail ||
		rs[0].Message != dir+": 2 entries belong to another user than the server's (nobody, uid 65534), so it may not read or replace them: dkim/example.com/s1.rsa.pem (uid 0), users.lock (uid 0)" ||
		rs[0].Fix != "chown -R nobody: "+dir {
		t.Errorf("%+v", rs)
	}
	// More than five: the first five, and how many more.
	for i := range 6 {
		os.WriteFile(filepath.Join(dir, "f"+string(rune('a'+i))), nil, 0o600)
	}
	rs = dataDirResults(cfg)
	if len(rs) != 1 || !strings.Contains(rs[0].Message, ": 8 entries belong to") || !strings.HasSuffix(rs[0].Message, "fd (uid 0) and 3 more") {
		t.Errorf("many: %+v", rs)
	}
}

// TestCheckDataDirNoUser: without user in the configuration (systemd
// starts Postern as its user), the server's user is the data
// directory's owner: a file root made in nobody's directory is reported.
func TestCheckDataDirNoUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: only root may give a file to another user")
	}
	dir := filepath.Join(t.TempDir(), "data")
	os.Mkdir(dir, 0o700)
	os.WriteFile(filepath.Join(dir, "users.json"), nil, 0o600)
	os.WriteFile(filepath.Join(dir, "users.lock"), nil, 0o600)
	os.Chown(dir, 65534, 65534)
	os.Chown(filepath.Join(dir, "users.lock"), 65534, 65534)
	rs := dataDirResults(&config.Config{DataDir: dir})
	if len(rs) != 1 || rs[0].Status != StatusFail ||
		!strings.Contains(rs[0].Message, "1 entry belongs to another user than the server's (uid 65534, the data directory's owner: no user in the configuration)") ||
		!strings.HasSuffix(rs[0].Message, ": users.json (uid 0)") ||
		rs[0].Fix != "chown -R nobody: "+dir { // the server's user, never root who runs the check
		t.Errorf("%+v", rs)
	}
	// serve started as root without user on nobody's directory: the fix
	// is to serve as nobody, not to give the directory to root.
	err := fsutil.CheckDataDir(dir, "", "", 0)
	if err == nil || !strings.Contains(err.Error(), `belongs to uid 65534, but Postern runs as uid 0; fix: serve as its owner: user = "nobody" in the configuration`) ||
		strings.Contains(err.Error(), "chown") {
		t.Errorf("serve as root: %v", err)
	}
}
