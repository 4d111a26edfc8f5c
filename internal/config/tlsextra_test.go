package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTLSExtra(t *testing.T) {
	dir := t.TempDir()
	src := `hostname = "mail.example.com"
[tls]
cert_file = "rsa.pem"
key_file = "rsa.key"
ca_file = "roots.pem"
ticket_rotation = "6h"
[[tls.certificate]]
cert_file = "ec.pem"
key_file = "/etc/ec.key"
[[listener]]
role = "submission"
address = ":587"
tls_tickets = false
[[listener]]
role = "submissions"
address = ":465"
`
	c := loadText(t, dir, src)
	if c.TLS.CAFile != filepath.Join(dir, "roots.pem") || c.TLS.TicketRotation != 6*time.Hour {
		t.Errorf("tls: %+v", c.TLS)
	}
	want := []CertificateFiles{{filepath.Join(dir, "rsa.pem"), filepath.Join(dir, "rsa.key")}, {filepath.Join(dir, "ec.pem"), "/etc/ec.key"}}
	got := c.TLSCertificateFiles()
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("files %v, want %v", got, want)
	}
	if !c.Listeners[0].NoTLSTickets || c.Listeners[1].NoTLSTickets {
		t.Errorf("tickets: %+v", c.Listeners)
	}

	// [[tls.certificate]] alone is enough.
	loadText(t, dir, "hostname = \"mail.example.com\"\n[[tls.certificate]]\ncert_file = \"a.pem\"\nkey_file = \"a.key\"\n")

	// tls.ticket_rotation cannot be off: 0 is refused, not a default.
	zero := "hostname = \"mail.example.com\"\n[tls]\nself_signed = true\nticket_rotation = \"0s\"\n"
	if _, err := parse(filepath.Join(dir, "p.toml"), []byte(zero), fixedHost); err == nil || !strings.Contains(err.Error(), "tls.ticket_rotation: 0s is shorter than 1m0s") {
		t.Errorf("ticket_rotation = \"0s\": %v", err)
	}

	bad := `hostname = "mail.example.com"
[tls]
self_signed = true
ticket_rotation = "10s"
ca_file = 3
[[tls.certificate]]
cert_file = "a.pem"
color = "red"
[[listener]]
role = "submission"
address = ":587"
tls_tickets = "no"
`
	_, err := parse(filepath.Join(dir, "bad.toml"), []byte(bad), fixedHost)
	checkSays(t, err,
		"tls.ticket_rotation: 10s is shorter than 1m0s",
		"tls.ca_file: expected a string",
		`unknown key "tls.certificate.color"`,
		"tls.certificate[0].key_file: is required",
		"tls.self_signed: is true, but [[tls.certificate]] is set",
		"listener[0].tls_tickets: expected true or false",
	)
}
