package test

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestPackage builds the Debian package with scripts/package, without
// root, and checks what it holds as dpkg-deb reads it (-I, -c, -x): the
// control fields and maintainer scripts, each file with its owner and
// mode, the conffile, the units for /usr/bin, the static binary of the
// release in VERSION, the manual page the binary makes, the docs the
// unit points to, and md5sums. Installing it is scripts/install-check's
// part (root, a Debian root booted with systemd-nspawn).
func TestPackage(t *testing.T) {
	integration(t)
	dpkgDeb := needTool(t, "dpkg-deb")
	b, err := os.ReadFile("../VERSION")
	if err != nil {
		t.Fatal(err)
	}
	release := strings.TrimSpace(string(b))
	out := t.TempDir()
	build := exec.Command("../scripts/package", "-o", out)
	build.Env = append(os.Environ(), "POSTERN_DEB_SUFFIX=+test1")
	msg, err := build.CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/package: %v\n%s", err, msg)
	}
	deb := strings.TrimSpace(string(msg))
	arch := map[string]string{"386": "i386", "arm": "armhf"}[goEnv(t, "GOARCH")]
	if arch == "" {
		arch = goEnv(t, "GOARCH")
	}
	if want := filepath.Join(out, "postern_"+release+"+test1_"+arch+".deb"); deb != want {
		t.Fatalf("scripts/package wrote %q, want %q", deb, want)
	}
	dpkg := func(args ...string) string {
		t.Helper()
		b, err := exec.Command(dpkgDeb, append(args, deb)...).Output()
		if err != nil {
			t.Fatalf("dpkg-deb %s: %v", strings.Join(args, " "), err)
		}
		return string(b)
	}

	// dpkg-deb -I: the control file and the maintainer scripts.
	info := dpkg("-I")
	for _, want := range []string{
		"\n Package: postern\n", "\n Version: " + release + "+test1\n", "\n Architecture: " + arch + "\n",
		"\n Depends: adduser\n", "\n Section: mail\n", "\n Maintainer: ", "\n Description: mail server",
		" postinst ", " prerm ", " postrm ", " conffiles ", " md5sums ",
	} {
		if !strings.Contains(info, want) {
			t.Errorf("dpkg-deb -I lacks %q:\n%s", want, info)
		}
	}
	if strings.Contains(info, "Provides: mail-transport-agent") {
		t.Error("the package provides mail-transport-agent, which policy makes it conflict with every other MTA")
	}
	ctrl := t.TempDir()
	if b, err := exec.Command(dpkgDeb, "-e", deb, ctrl).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -e: %v\n%s", err, b)
	}
	if b, _ := os.ReadFile(filepath.Join(ctrl, "conffiles")); string(b) != "/etc/postern/postern.toml\n" {
		t.Errorf("conffiles: %q", b)
	}
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		p := filepath.Join(ctrl, s)
		if b, err := exec.Command("sh", "-n", p).CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", s, err, b)
		}
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("%s: %v %v", s, fi, err)
		}
	}
	postinst, _ := os.ReadFile(filepath.Join(ctrl, "postinst"))
	for _, want := range []string{"adduser --system", "/var/lib/postern", "postern restart", "postern check", "update-alternatives --quiet --install /usr/sbin/sendmail sendmail /usr/bin/postern"} {
		if !bytes.Contains(postinst, []byte(want)) {
			t.Errorf("postinst lacks %q", want)
		}
	}
	if postrm, _ := os.ReadFile(filepath.Join(ctrl, "postrm")); !bytes.Contains(postrm, []byte("purge)\n\trm -rf /var/lib/postern")) {
		t.Errorf("postrm does not delete the data on purge:\n%s", postrm)
	}

	// dpkg-deb -c: each file, its owner and mode.
	files := map[string]string{} // path -> "mode owner"
	for line := range strings.SplitSeq(strings.TrimSpace(dpkg("-c")), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 {
			t.Fatalf("dpkg-deb -c line %q", line)
		}
		files[strings.TrimSuffix(strings.TrimPrefix(f[5], "."), "/")] = f[0] + " " + f[1]
	}
	for path, want := range map[string]string{
		"/usr/bin/postern":                                     "-rwxr-xr-x root/root",
		"/etc/postern/postern.toml":                            "-rw-r--r-- root/root", // 0640 root:postern by dpkg-statoverride
		"/usr/share/lintian/overrides/postern":                 "-rw-r--r-- root/root",
		"/lib/systemd/system/postern.service":                  "-rw-r--r-- root/root",
		"/lib/systemd/system/postern.socket":                   "-rw-r--r-- root/root",
		"/usr/share/man/man8/postern.8.gz":                     "-rw-r--r-- root/root",
		"/usr/share/doc/postern/copyright":                     "-rw-r--r-- root/root",
		"/usr/share/doc/postern/changelog.gz":                  "-rw-r--r-- root/root",
		"/usr/share/doc/postern/CHANGELOG.md":                  "-rw-r--r-- root/root",
		"/usr/share/doc/postern/README.md":                     "-rw-r--r-- root/root",
		"/usr/share/doc/postern/operations.md":                 "-rw-r--r-- root/root",
		"/usr/share/doc/postern/images/status.png":             "-rw-r--r-- root/root",
		"/usr/share/doc/postern/configuration.md":              "-rw-r--r-- root/root",
		"/usr/share/doc/postern/examples/postern.example.toml": "-rw-r--r-- root/root",
	} {
		if got := files[path]; got != want {
			t.Errorf("%s: %q, want %q", path, got, want)
		}
	}
	for path, mode := range files {
		if !strings.HasSuffix(mode, " root/root") {
			t.Errorf("%s is not root's: %s", path, mode)
		}
		if strings.HasPrefix(path, "/var") || strings.HasPrefix(path, "/usr/local") || strings.Contains(path, "bench") {
			t.Errorf("the package holds %s", path)
		}
	}

	// dpkg-deb -x: what the files say.
	root := t.TempDir()
	if b, err := exec.Command(dpkgDeb, "-x", deb, root).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x: %v\n%s", err, b)
	}
	bin := filepath.Join(root, "usr/bin/postern")
	if err := checkStatic(bin); err != nil {
		t.Errorf("/usr/bin/postern: %v", err)
	}
	if v, err := exec.Command(bin, "version").Output(); err != nil || !strings.HasPrefix(string(v), "postern "+release+"\n") {
		t.Errorf("postern version: %v, %q", err, v)
	}
	unit, _ := os.ReadFile(filepath.Join(root, "lib/systemd/system/postern.service"))
	for _, want := range []string{"ExecStart=/usr/bin/postern serve --config /etc/postern/postern.toml\n", "ExecReload=/usr/bin/postern reload "} {
		if !bytes.Contains(unit, []byte(want)) {
			t.Errorf("postern.service lacks %q", want)
		}
	}
	if bytes.Contains(unit, []byte("/usr/local")) {
		t.Error("postern.service names /usr/local")
	}
	for _, m := range regexp.MustCompile(`file://(/\S+)`).FindAllSubmatch(unit, -1) {
		if _, ok := files[string(m[1])]; !ok {
			t.Errorf("postern.service's Documentation= names %s, which the package does not hold", m[1])
		}
	}
	if conf, _ := os.ReadFile(filepath.Join(root, "etc/postern/postern.toml")); !bytes.Equal(conf, mustRead(t, "../postern.example.toml")) {
		t.Error("/etc/postern/postern.toml is not postern.example.toml")
	}
	man, err := exec.Command(bin, "help", "--man").Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := gunzip(t, filepath.Join(root, "usr/share/man/man8/postern.8.gz")); !bytes.Equal(got, man) {
		t.Error("postern.8.gz is not what postern help --man prints")
	}
	if cl := gunzip(t, filepath.Join(root, "usr/share/doc/postern/changelog.gz")); !bytes.HasPrefix(cl, []byte("postern ("+release+"+test1) unstable; urgency=medium\n")) {
		t.Errorf("changelog.gz: %s", cl)
	}
	copyright := string(mustRead(t, filepath.Join(root, "usr/share/doc/postern/copyright")))
	for _, mod := range []string{"github.com/BurntSushi/toml", "golang.org/x/crypto", "go.etcd.io/bbolt"} {
		if !strings.Contains(copyright, "Files: (Go module) "+mod+" ") {
			t.Errorf("copyright does not name %s, linked into the binary", mod)
		}
	}
	var sums []string
	for line := range strings.SplitSeq(strings.TrimSpace(string(mustRead(t, filepath.Join(ctrl, "md5sums")))), "\n") {
		sums = append(sums, strings.Fields(line)[1])
	}
	var regular []string
	for path, mode := range files {
		if strings.HasPrefix(mode, "-") && !strings.HasPrefix(path, "/etc/") { // conffiles have no md5sums line
			regular = append(regular, strings.TrimPrefix(path, "/"))
		}
	}
	slices.Sort(sums)
	slices.Sort(regular)
	if !slices.Equal(sums, regular) {
		t.Errorf("md5sums lists %q, the package holds %q", sums, regular)
	}
	md5 := exec.Command("md5sum", "--check", "--quiet", filepath.Join(ctrl, "md5sums"))
	md5.Dir = root
	if b, err := md5.CombinedOutput(); err != nil {
		t.Errorf("md5sum --check: %v\n%s", err, b)
	}
	// Debian's own checks of a package: no error, no warning (the
	// overrides in contrib/debian/lintian-overrides say why).
	lint := exec.Command(needTool(t, "lintian"), "--fail-on", "error,warning", "--tag-display-limit", "0", deb)
	if b, err := lint.CombinedOutput(); err != nil {
		t.Errorf("lintian: %v\n%s", err, b)
	}
	t.Logf("dpkg-deb -c %s:\n%s", filepath.Base(deb), dpkg("-c"))
}

func goEnv(t *testing.T, name string) string {
	t.Helper()
	b, err := exec.Command("go", "env", name).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func gunzip(t *testing.T, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(z)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
