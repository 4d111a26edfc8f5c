package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAdmin loads [admin], its defaults and its checks.
func TestAdmin(t *testing.T) {
	load := func(admin string) (*Config, error) {
		p := filepath.Join(t.TempDir(), "postern.toml")
		os.WriteFile(p, []byte("hostname = \"mail.example.com\"\n[tls]\nself_signed = true\n"+admin), 0o600)
		return Load(p)
	}
	c, err := load("")
	if err != nil {
		t.Fatal(err)
	}
	if c.Admin != (Admin{HTTPTLS: true}) {
		t.Errorf("defaults: %+v", c.Admin)
	}
	c, err = load("[admin]\nsocket_group = \"postern\"\nhttp_address = \"127.0.0.1:2581\"\ntoken_file = \"admin.token\"\nhttp_tls = false\n")
	if err != nil {
		t.Fatal(err)
	}
	if c.Admin.SocketGroup != "postern" || c.Admin.HTTPAddress != "127.0.0.1:2581" || c.Admin.HTTPTLS ||
		!filepath.IsAbs(c.Admin.TokenFile) || filepath.Base(c.Admin.TokenFile) != "admin.token" {
		t.Errorf("got %+v", c.Admin)
	}
	for _, tc := range []struct{ admin, want string }{
		{"[admin]\nhttp_address = \"127.0.0.1:2581\"\n", "admin.token_file: is required"},
		{"[admin]\nhttp_address = \"192.0.2.1:2581\"\ntoken_file = \"t\"\nhttp_tls = false\n", "admin.http_tls: may be false only on a loopback"},
		{"[admin]\nhttp_address = \":2581\"\ntoken_file = \"t\"\nhttp_tls = false\n", "admin.http_tls"},
		{"[admin]\nhttp_address = \"nope\"\ntoken_file = \"t\"\n", "admin.http_address"},
		{"[admin]\nhttp_address = \"127.0.0.1:2580\"\ntoken_file = \"t\"\n", "also http.address"},
		{"[admin]\nsocket_group = \"a b\"\n", "admin.socket_group"},
		{"[admin]\ntoken = \"x\"\n", "token"},
	} {
		_, err := load(tc.admin)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.admin, err, tc.want)
		}
	}
}
