package config

import (
	"path/filepath"
	"testing"
)

// TestAdmin loads [admin], its defaults and its checks.
func TestAdmin(t *testing.T) {
	c := loadText(t, t.TempDir(), selfSigned)
	if c.Admin != (Admin{HTTPTLS: true}) {
		t.Errorf("defaults: %+v", c.Admin)
	}
	c = loadText(t, t.TempDir(), selfSigned+"[admin]\nsocket_group = \"postern\"\nhttp_address = \"127.0.0.1:2581\"\ntoken_file = \"admin.token\"\nhttp_tls = false\n")
	if c.Admin.SocketGroup != "postern" || c.Admin.HTTPAddress != "127.0.0.1:2581" || c.Admin.HTTPTLS ||
		!filepath.IsAbs(c.Admin.TokenFile) || filepath.Base(c.Admin.TokenFile) != "admin.token" {
		t.Errorf("got %+v", c.Admin)
	}
	checkRefusals(t, selfSigned, []refusal{
		{"[admin]\nhttp_address = \"127.0.0.1:2581\"\n", "admin.token_file: is required"},
		{"[admin]\nhttp_address = \"192.0.2.1:2581\"\ntoken_file = \"t\"\nhttp_tls = false\n", "admin.http_tls: may be false only on a loopback"},
		{"[admin]\nhttp_address = \":2581\"\ntoken_file = \"t\"\nhttp_tls = false\n", "admin.http_tls"},
		{"[admin]\nhttp_address = \"nope\"\ntoken_file = \"t\"\n", "admin.http_address"},
		{"[admin]\nhttp_address = \"127.0.0.1:2580\"\ntoken_file = \"t\"\n", "also http.address"},
		{"[admin]\nsocket_group = \"a b\"\n", "admin.socket_group"},
		{"[admin]\ntoken = \"x\"\n", "token"},
	})
}
