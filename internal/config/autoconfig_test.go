package config

import (
	"slices"
	"strings"
	"testing"
)

func TestAutoconfig(t *testing.T) {
	src := `hostname = "mail.example.com"
local_domains = ["example.com", "example.org"]
[acme]
[autoconfig]
imap_host = "IMAP.example.com"
`
	c := loadText(t, t.TempDir(), src)
	want := Autoconfig{Enabled: true, Address: ":443", IMAPHost: "imap.example.com", IMAPPort: 993, ACMENames: true}
	if c.Autoconfig != want {
		t.Errorf("autoconfig %+v, want %+v", c.Autoconfig, want)
	}
	names := []string{"mail.example.com", "autoconfig.example.com", "autodiscover.example.com", "autoconfig.example.org", "autodiscover.example.org"}
	if !slices.Equal(c.ACME.Hostnames, names) {
		t.Errorf("acme hostnames %v, want %v", c.ACME.Hostnames, names)
	}
	// acme_names = false leaves [acme] alone; no [autoconfig], nothing.
	c = loadText(t, t.TempDir(), strings.Replace(src, "[autoconfig]\n", "[autoconfig]\nacme_names = false\naddress = \"192.0.2.1:8443\"\nimap_port = 1993\n", 1))
	if !slices.Equal(c.ACME.Hostnames, names[:1]) || c.Autoconfig.Address != "192.0.2.1:8443" || c.Autoconfig.IMAPPort != 1993 {
		t.Errorf("acme_names = false: %v %+v", c.ACME.Hostnames, c.Autoconfig)
	}
	if c, _ := parse("postern.toml", []byte("hostname = \"mail.example.com\"\n[acme]\n"), fixedHost); c.Autoconfig.Enabled || len(c.ACME.Hostnames) != 1 {
		t.Errorf("without [autoconfig]: %+v %v", c.Autoconfig, c.ACME.Hostnames)
	}
}

func TestAutoconfigRefused(t *testing.T) {
	src := `hostname = "mail.example.com"
[acme]
challenge = "tls-alpn-01"
[autoconfig]
imap_host = "imap..example.com"
imap_port = 0
colour = "red"
[[listener]]
role = "mx"
address = ":25"
`
	_, err := parse("postern.toml", []byte(src), fixedHost)
	checkSays(t, err,
		`autoconfig.address: ":443" is already acme.tls_alpn_address`,
		"autoconfig: needs a submission or submissions listener to name",
		`autoconfig.imap_host: "imap..example.com" has an empty label`,
		"autoconfig.imap_port: 0 is out of range",
		`unknown key "autoconfig.colour"`,
	)
}
