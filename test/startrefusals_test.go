package test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCheckCatchesStartRefusals walks what serve refuses at start, one
// mistake at a time, and shows that postern check fails on each with
// the same key: an operator who ran check is not surprised by serve.
func TestCheckCatchesStartRefusals(t *testing.T) {
	integration(t)
	for _, c := range []struct {
		name  string
		extra string                      // TOML appended
		prep  func(s *server, dir string) // edits before the runs
		want  string                      // in serve's error and in a FAIL line of check
	}{
		{name: "admin token missing", extra: "\n[admin]\nhttp_address = \"127.0.0.1:0\"\ntoken_file = \"none.token\"\n", want: "admin.token_file"},
		{name: "admin token short", extra: "\n[admin]\nhttp_address = \"127.0.0.1:0\"\ntoken_file = \"short.token\"\n",
			prep: func(s *server, dir string) { os.WriteFile(filepath.Join(dir, "short.token"), []byte("short\n"), 0o600) },
			want: "the token must be at least"},
		{name: "srs secret missing", extra: "\n[srs]\nsecret_file = \"none.secret\"\n", want: "srs.secret_file"},
		{name: "srs secret empty", extra: "\n[srs]\nsecret_file = \"empty.secret\"\n",
			prep: func(s *server, dir string) {
				os.WriteFile(filepath.Join(dir, "empty.secret"), []byte("\n# none\n"), 0o600)
			},
			want: "holds no secret"},
		{name: "smarthost password", extra: "\n[smarthost]\naddress = \"127.0.0.1:1\"\nusername = \"u\"\npassword_file = \"none.pw\"\n", want: "smarthost.password_file"},
		{name: "delivery ca", extra: "\n[delivery]\nca_file = \"none-ca.pem\"\n", want: "delivery.ca_file"},
		{name: "client ca", prep: func(s *server, dir string) {
			s.editConfig("self_signed = true", "self_signed = true\nclient_ca_file = \"none-ca.pem\"")
			s.editConfig("role = \"submission\"", "role = \"submission\"\nclient_certificates = \"request\"")
		}, want: "tls.client_ca_file"},
		{name: "dkim key", extra: "\n[[mail_auth.dkim_key]]\ndomain = \"example.test\"\nselector = \"s9\"\nkey_file = \"none.pem\"\n", want: "mail_auth.dkim_key[0]"},
		{name: "redis down", extra: "\n[redis]\naddress = \"127.0.0.1:1\"\n", want: "127.0.0.1:1"},
		{name: "certificate missing", prep: func(s *server, dir string) {
			s.editConfig("self_signed = true", "cert_file = \"none-cert.pem\"\nkey_file = \"none-key.pem\"")
		}, want: "none-cert.pem"},
		{name: "data dir writable", prep: func(s *server, dir string) {
			os.MkdirAll(s.data, 0o700)
			os.Chmod(s.data, 0o777)
		}, want: "writable"},
		{name: "no such user", prep: func(s *server, dir string) {
			b, _ := os.ReadFile(s.config)
			os.WriteFile(s.config, append([]byte("user = \"no-such-user-postern\"\n"), b...), 0o600)
		}, want: `user = "no-such-user-postern"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			s := testConfig(t, dir, c.extra)
			if c.prep != nil {
				c.prep(s, dir)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			serve := exec.CommandContext(ctx, binPath, "serve", "--config", s.config)
			serve.Dir = dir
			out, err := serve.CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("serve started despite the mistake:\n%s", out)
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || !strings.Contains(string(out), c.want) {
				t.Fatalf("serve: %v, want a refusal naming %q:\n%s", err, c.want, out)
			}
			chk, err := exec.Command(binPath, "check", "--config", s.config).CombinedOutput()
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Errorf("check: %v, want exit 1", err)
			}
			found := false
			for _, l := range strings.Split(string(chk), "\n") {
				if strings.HasPrefix(l, "FAIL ") && strings.Contains(l, c.want) {
					found = true
				}
			}
			if !found {
				t.Errorf("check has no FAIL line naming %q; serve said:\n%s\ncheck said:\n%s", c.want, out, chk)
			}
			if c.name == "certificate missing" {
				if strings.Contains(string(out), "allow-broken-chain") {
					t.Errorf("a missing file is no broken chain; serve suggests --allow-broken-chain:\n%s", out)
				}
				// With the flag given, the suggestion is not repeated either.
				again, _ := exec.Command(binPath, "serve", "--allow-broken-chain", "--config", s.config).CombinedOutput()
				if strings.Count(string(again), "--allow-broken-chain") > 1 || strings.Contains(string(again), "start anyway") {
					t.Errorf("serve --allow-broken-chain repeats the suggestion:\n%s", again)
				}
			}
		})
	}
}
