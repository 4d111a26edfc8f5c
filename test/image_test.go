package test

import (
	"bytes"
	"debug/elf"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"postern/internal/testcert"
)

// TestImage proves the contents of contrib/Dockerfile's image without a
// Docker engine (there is none where the tests run). It carries out the
// Dockerfile (dockerfile_test.go): the build stage's go build, with its
// environment and flags, and the final stage's COPY lines into a
// temporary root file system. It checks that the binary is static and
// stripped, then runs the ENTRYPOINT and CMD in that root as Docker
// would: chrooted, as the USER, as PID 1 of a new PID namespace, in /,
// with Docker's environment only. There it adds a user as `docker exec
// postern postern user add` would, submits a message with AUTH over
// STARTTLS, finds it in the Maildir in the volume, owned by the USER,
// and stops the server with SIGTERM. Then it starts it again with TZ
// set (the zone information), and runs `postern check` (the data
// directory, and the CA certificates the binary reads).
//
// What it cannot prove: docker build itself (BuildKit's COPY semantics
// are emulated, see image.copy), the golang:1.26 image's files (this
// machine's Debian stands in for it), and what the Docker runtime adds
// (/proc, /dev, /etc/hosts, /etc/resolv.conf, a network namespace): the
// binary does without them here.
func TestImage(t *testing.T) {
	integration(t)
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	stages := parseDockerfile(t, filepath.Join(repo, "contrib", "Dockerfile"))
	if len(stages) != 2 {
		t.Fatalf("Dockerfile: %d stages; TestImage emulates a build stage and a final stage", len(stages))
	}
	b := runBuildStage(t, stages[0], repo, nil)

	// The binary is static (no interpreter, no shared libraries), has no
	// symbol table or DWARF (-s -w) and no path of this machine
	// (-trimpath).
	bin, _ := b.path(b.binary)
	if err := checkStatic(bin); err != nil {
		t.Fatalf("the image's binary: %v", err)
	}
	if sh, err := exec.LookPath("sh"); err == nil && checkStatic(sh) == nil {
		t.Errorf("checkStatic finds %s static: the check proves nothing", sh)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{".symtab", ".debug_info", ".zdebug_info"} {
		if f.Section(name) != nil {
			t.Errorf("the binary has a %s section: not built with -ldflags \"-s -w\"", name)
		}
	}
	f.Close()
	if raw, err := os.ReadFile(bin); err != nil {
		t.Fatal(err)
	} else if bytes.Contains(raw, []byte(repo+"/")) {
		t.Errorf("the binary holds the path %s: not built with -trimpath", repo)
	}

	// As TestPrivilegeDrop and the other tests that need root.
	needRoot(t, "needs root from here: chroot, and files owned by the image's USER")
	im := assembleImage(t, stages[1], b)
	im.resolveUser(t)

	// The data directory is the VOLUME, the USER's, 0700; the CMD names
	// the configuration file.
	if len(im.volumes) != 1 {
		t.Fatalf("Dockerfile: VOLUME %q: want the data directory alone", im.volumes)
	}
	dataDir := im.volumes[0]
	im.checkOwner(t, dataDir, 0o700)
	i := slices.Index(im.cmd, "--config")
	if i < 0 || i+1 >= len(im.cmd) {
		t.Fatalf("Dockerfile: CMD %q names no --config", im.cmd)
	}
	configPath := im.cmd[i+1]

	// testConfig's server (free loopback ports, its own DNS server, a
	// self-signed certificate) with the image's data directory, in the
	// file the CMD reads, as a read-only bind mount would hold it.
	s := testConfig(t, t.TempDir(), "")
	cfg := s.configReplaced(fmt.Sprintf("data_dir = %q", s.data), fmt.Sprintf("data_dir = %q", dataDir))
	s.config = filepath.Join(im.root, configPath)
	s.data = filepath.Join(im.root, dataDir)
	if err := os.WriteFile(s.config, []byte(cfg), 0o644); err != nil {
		t.Fatalf("configuration file (does the image have %s?): %v", filepath.Dir(configPath), err)
	}

	// docker run postern version: the release in VERSION, built in.
	release, err := os.ReadFile(filepath.Join(repo, "VERSION"))
	if err != nil {
		t.Fatal(err)
	}
	want := "postern " + strings.TrimSpace(string(release)) + "\n"
	out, err := im.command(append(im.entrypoint, "version")...).CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), want) {
		t.Fatalf("postern version: %v, %q; want %q first", err, out, want)
	}

	// docker run -d postern: ENTRYPOINT and CMD.
	s.startCmd(func(cmd *exec.Cmd) { im.prepare(cmd, append(im.entrypoint, im.cmd...)) })
	if got, want := procUID(t, s.cmd.Process.Pid), strings.Repeat(strconv.Itoa(int(im.uid))+" ", 4); got+" " != want {
		t.Errorf("the server's uids %q, want the USER's, %d", got, im.uid)
	}

	// docker exec postern postern user add ... (password on stdin); the
	// server notices the new user within about a second.
	const user, pass = "postmaster@localhost", "pw-image-1"
	add := im.command(append(im.entrypoint, "user", "add", user, "--config", configPath)...)
	add.Stdin = strings.NewReader(pass + "\n")
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("user add: %v\n%s", err, out)
	}
	c := s.waitLogin(user, pass)
	if err := send(c, user, user, "From: "+user+"\r\nSubject: image-marker\r\n\r\nfrom the image\r\n"); err != nil {
		t.Fatalf("submission with AUTH over STARTTLS: %v", err)
	}
	c.Quit()
	s.waitMaildir(user, "image-marker", "from the image")

	// Everything in the volume, the message included, is the USER's.
	msgs, err := filepath.Glob(filepath.Join(s.data, "mail", "localhost", "postmaster", "new", "*"))
	if err != nil || len(msgs) != 1 {
		t.Fatalf("Maildir new/: %q, %v; want one message", msgs, err)
	}
	im.checkTree(t, dataDir, msgs[0])

	// docker kill -s USR2: as PID 1, the server refuses a graceful
	// restart (its exit would end the new process with the namespace)
	// and goes on serving.
	if err := s.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	waitLogFor(t, s, "graceful restart refused: Postern is PID 1", 5*time.Second)
	if c, err = dial(t, s.sub, user, pass); err != nil {
		t.Fatalf("after SIGUSR2: %v", err)
	}
	if err := send(c, user, user, "From: "+user+"\r\nSubject: after-usr2\r\n\r\nstill serving\r\n"); err != nil {
		t.Fatalf("submission after SIGUSR2: %v", err)
	}
	c.Quit()
	s.waitMaildir(user, "after-usr2", "still serving")

	// docker stop: SIGTERM, exit 0, and no error in the log, whose times
	// are UTC (the image has no /etc/localtime).
	if err := s.signal(syscall.SIGTERM); err != nil {
		t.Errorf("after SIGTERM: %v, want exit 0", err)
	}
	checkLog(t, s.stderr.String(), "Z")

	// docker run -e TZ=Asia/Kolkata with the same volume: the zone
	// information in the image gives the log's times their offset (one
	// without daylight saving time), and the spool opens again.
	s.startCmd(func(cmd *exec.Cmd) {
		im.prepare(cmd, append(im.entrypoint, im.cmd...))
		cmd.Env = append(cmd.Env, "TZ=Asia/Kolkata")
	})
	if err := s.signal(syscall.SIGTERM); err != nil {
		t.Errorf("after SIGTERM: %v, want exit 0", err)
	}
	checkLog(t, s.stderr.String(), "+05:30")

	im.checkRoots(t, cfg, configPath)
}

// checkStatic returns an error when the ELF file at path needs a dynamic
// loader or shared libraries.
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return errors.New("dynamically linked: it has a PT_INTERP program header")
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		return err
	}
	if len(libs) > 0 {
		return fmt.Errorf("dynamically linked: it needs %q", libs)
	}
	return nil
}

// resolveUser finds the USER in the image's /etc/passwd and /etc/group,
// by name or number as Docker does, and sets the environment Docker
// gives a container of this image: its default PATH (scratch sets none),
// HOSTNAME, and HOME from the user's passwd entry.
func (im *image) resolveUser(t *testing.T) {
	t.Helper()
	u, g, hasGroup := strings.Cut(im.user, ":")
	entry := im.lookup(t, "/etc/passwd", u)
	if entry == nil {
		t.Fatalf("USER %s: no such user in the image's /etc/passwd: the binary could not look itself up", im.user)
	}
	gid := entry[3]
	if hasGroup {
		ge := im.lookup(t, "/etc/group", g)
		if ge == nil {
			t.Fatalf("USER %s: no such group in the image's /etc/group", im.user)
		}
		gid = ge[2]
	}
	uid, err1 := strconv.ParseUint(entry[2], 10, 32)
	gidn, err2 := strconv.ParseUint(gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		t.Fatalf("USER %s: %v", im.user, err)
	}
	im.uid, im.gid = uint32(uid), uint32(gidn)
	im.env = []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOSTNAME=postern-image-test",
		"HOME=" + entry[5],
	}
}

// lookup returns the fields of the line of the image's passwd or group
// file whose name or number (third field) is key, or nil.
func (im *image) lookup(t *testing.T, file, key string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(im.root, file))
	if err != nil {
		t.Fatalf("the image's %s: %v", file, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		want := 4 // group: name:password:gid:members
		if file == "/etc/passwd" {
			want = 7
		}
		if len(f) == want && (f[0] == key || f[2] == key) {
			return f
		}
	}
	return nil
}

// prepare makes cmd run args in the image as Docker would: chrooted in
// the root, as the USER (no supplementary groups), as PID 1 of a new PID
// namespace (where a signal without a handler is ignored), in /, with
// Docker's environment only.
func (im *image) prepare(cmd *exec.Cmd, args []string) {
	cmd.Path, cmd.Args = args[0], args
	cmd.Env, cmd.Dir = slices.Clone(im.env), "/" // Dir is within the chroot
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Chroot:     im.root,
		Credential: &syscall.Credential{Uid: im.uid, Gid: im.gid, Groups: []uint32{}},
		Cloneflags: syscall.CLONE_NEWPID,
	}
}

// command returns a command that runs args in the image.
func (im *image) command(args ...string) *exec.Cmd {
	cmd := &exec.Cmd{}
	im.prepare(cmd, args)
	return cmd
}

// checkOwner checks that the image's path p is a directory of the USER
// with mode.
func (im *image) checkOwner(t *testing.T, p string, mode fs.FileMode) {
	t.Helper()
	fi, err := os.Stat(filepath.Join(im.root, p))
	if err != nil {
		t.Fatalf("the image's %s: %v", p, err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || fi.Mode().Perm() != mode || st.Uid != im.uid || st.Gid != im.gid {
		t.Errorf("the image's %s: %v %d:%d, want %v %d:%d", p, fi.Mode(), st.Uid, st.Gid, fs.ModeDir|mode, im.uid, im.gid)
	}
}

// checkTree checks that every file under the image's directory dir,
// must among them, belongs to the USER.
func (im *image) checkTree(t *testing.T, dir, must string) {
	t.Helper()
	seen := false
	err := filepath.Walk(filepath.Join(im.root, dir), func(p string, fi fs.FileInfo, err error) error {
		if err != nil {
			return err
		}
		seen = seen || p == must
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != im.uid || st.Gid != im.gid {
			t.Errorf("%s belongs to %d:%d, want the USER's %d:%d", strings.TrimPrefix(p, im.root), st.Uid, st.Gid, im.uid, im.gid)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !seen {
		t.Errorf("%s not found under %s", must, dir)
	}
}

// logTime is the time of a text (logfmt) log line.
var logTime = regexp.MustCompile(`^time=(\S+) `)

// checkLog checks the server's standard error: log lines, none of
// level ERROR, each stamped with a time ending in offset.
func checkLog(t *testing.T, log, offset string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(log), "\n")
	if len(lines) < 2 || !strings.Contains(log, "level=INFO") {
		t.Errorf("not a text log on standard error:\n%s", log)
	}
	var untimed []string
	for _, l := range lines {
		if strings.Contains(l, "level=ERROR") {
			t.Errorf("error in the log: %s", l)
		}
		if m := logTime.FindStringSubmatch(l); m == nil || !strings.HasSuffix(m[1], offset) {
			untimed = append(untimed, l)
		}
	}
	if len(untimed) > 0 {
		t.Errorf("%d of %d log lines without a time ending in %s, the first: %s", len(untimed), len(lines), offset, untimed[0])
	}
}

// checkRoots runs `postern check` in the image with cfg changed to serve
// a certificate from a test CA, to prove that the binary reads the CA
// certificates at the path the image has them: with the CA added to
// that file the certificate is trusted, without it not. postern check
// also finds the data directory as it should be.
func (im *image) checkRoots(t *testing.T, cfg, configPath string) {
	t.Helper()
	dir := filepath.Dir(configPath)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	rootsCfg := strings.Replace(cfg, "self_signed = true", fmt.Sprintf("cert_file = %q\nkey_file = %q", certFile, keyFile), 1)
	if rootsCfg == cfg {
		t.Fatal("testConfig's self_signed line not found")
	}
	rootsPath := filepath.Join(dir, "roots.toml")
	if err := os.WriteFile(filepath.Join(im.root, rootsPath), []byte(rootsCfg), 0o644); err != nil {
		t.Fatal(err)
	}
	ca := testcert.NewCA()
	testcert.WriteFiles(t, ca.Issue(testcert.Spec{DNSNames: []string{"localhost"}, Valid: 90 * 24 * time.Hour}), filepath.Join(im.root, certFile), filepath.Join(im.root, keyFile))
	if err := os.Chown(filepath.Join(im.root, keyFile), int(im.uid), int(im.gid)); err != nil {
		t.Fatal(err)
	}

	// Go's first choice on Linux, where Debian keeps the bundle.
	bundle := filepath.Join(im.root, "/etc/ssl/certs/ca-certificates.crt")
	orig, err := os.ReadFile(bundle)
	if err != nil {
		t.Fatalf("the image's CA certificates: %v", err)
	}
	n := 0
	for rest := orig; ; n++ {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			break
		}
	}
	if n < 50 {
		t.Errorf("the image's CA certificates hold %d certificates", n)
	}
	check := func() map[string]checkResult {
		t.Helper()
		out, err := im.command(append(im.entrypoint, "check", "--json", "--config", rootsPath)...).Output()
		var results []checkResult
		if jerr := json.Unmarshal(out, &results); jerr != nil {
			t.Fatalf("postern check: %v, %v\n%s", err, jerr, out)
		}
		m := map[string]checkResult{}
		for _, r := range results {
			m[r.Check] = r
		}
		return m
	}
	if err := os.WriteFile(bundle, append(slices.Clone(orig), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})...), 0o644); err != nil {
		t.Fatal(err)
	}
	got := check()
	if r := got["certificate"]; r.Status != "OK" {
		t.Errorf("postern check with the test CA in the image's CA certificates: %+v, want the certificate OK", r)
	}
	if r := got["data-dir"]; r.Status != "OK" {
		t.Errorf("postern check: %+v, want the data directory OK", r)
	}
	if err := os.WriteFile(bundle, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	if r := check()["certificate"]; r.Status != "FAIL" {
		t.Errorf("postern check without the test CA: %+v, want the certificate refused", r)
	}
}

// checkResult is a line of `postern check --json`.
type checkResult struct {
	Check   string `json:"check"`
	Domain  string `json:"domain"`
	Status  string `json:"status"`
	Message string `json:"message"`
}
