package config

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// effective clears what WriteTOML does not print: the file the
// configuration came from. (Every key's value is resolved by Load.)
func effective(c *Config) *Config {
	c.Source = ""
	return c
}

// TestWriteTOMLRoundTrip: what WriteTOML prints loads back into the same
// configuration.
func TestWriteTOMLRoundTrip(t *testing.T) {
	example, err := os.ReadFile("../../postern.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	rich := `hostname = "mail.example.com"
local_domains = ["example.com"]
user = "postern"
group = "postern"
[tls]
cert_file = "c.pem"
key_file = "k.pem"
ca_file = "ca.pem"
client_ca_file = "clients.pem"
ticket_rotation = "12h"
[[tls.certificate]]
cert_file = "c2.pem"
key_file = "k2.pem"
[[listener]]
role = "mx"
address = ":25"
greet_delay = "3s"
dnsbl = ["zen.example", {zone = "b.example", weight = 2}]
dnsbl_threshold = 2
allow = ["192.0.2.0/24"]
deny = ["198.51.100.7"]
tls_tickets = false
[[listener]]
role = "submission"
address = ":587"
client_certificates = "request"
[auth]
scram_iterations = 8192
require_client_certificate = ["a@example.com"]
[auth.certificate_map]
"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" = "a@example.com"
[aliases]
"info@example.com" = "a@example.com"
"fwd@example.com" = ["a@example.com", "b@elsewhere.example"]
[send_as."a@example.com"]
domains = ["example.org"]
[delivery]
ca_file = "out-ca.pem"
[delivery.tls_minimum]
"bank.example" = "verify"
[smarthost]
address = "relay.example:587"
username = "u"
password_file = "pw"
domains = ["example.net"]
[mail_auth]
report_only = true
[[mail_auth.dkim_key]]
domain = "example.com"
selector = "s1"
key_file = "dkim.pem"
[acme]
email = "ops@example.com"
[check]
public_addresses = ["192.0.2.1"]
[proxy]
trusted = ["10.0.0.0/8"]
[admission]
ip_rate = 2.5
[send_limits.users."local:www-data"]
messages_per_hour = 5
over_limit = "hold"
[redis]
address = "127.0.0.1:6379"
[admin]
http_address = "127.0.0.1:8443"
token_file = "tok"
[autoconfig]
imap_host = "imap.example.com"
[pkcs11]
timeout = "3s"
[sendmail]
domain = "example.com"
[srs]
domain = "example.com"
max_age_days = 7
`
	for name, src := range map[string]string{"full": full, "example": string(example), "rich": rich} {
		c, err := load(write(t, src), fixedHost)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var b bytes.Buffer
		if err := c.WriteTOML(&b, nil); err != nil {
			t.Fatal(err)
		}
		c2, err := load(write(t, b.String()), fixedHost)
		if err != nil {
			t.Fatalf("%s: printed configuration does not load: %v\n%s", name, err, b.String())
		}
		if !reflect.DeepEqual(canon(reflect.ValueOf(*effective(c))), canon(reflect.ValueOf(*effective(c2)))) {
			t.Errorf("%s: printed configuration loads differently:\n%s", name, diffFields(reflect.ValueOf(*c), reflect.ValueOf(*c2), ""))
		}
	}
}

// keyPaths collects the dotted keys of a decoded tree, tables included,
// without array indexes.
func keyPaths(prefix []string, v any, out map[string]bool) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			p := append(append([]string{}, prefix...), k)
			out[keyOf(p...)] = true
			keyPaths(p, e, out)
		}
	case []map[string]any:
		for _, e := range v {
			keyPaths(prefix, e, out)
		}
	case []any:
		for _, e := range v {
			keyPaths(prefix, e, out)
		}
	}
}

// TestWriteTOMLEveryKey: every key the decoder knows is printed, for a
// configuration that uses every table: a key added to the decoder and
// not to WriteTOML fails here.
func TestWriteTOMLEveryKey(t *testing.T) {
	printed := map[string]bool{}
	for k := range everyKey(t, printed) {
		if !printed[k] {
			t.Errorf("key %s is not printed", k)
		}
	}
}

// everyKey returns every key the decoder knows, dotted ("limits.max_errors",
// "tls.certificate.cert_file"), found by decoding what WriteTOML prints
// of a configuration that uses every table; printed, when not nil, gets
// the keys printed.
func everyKey(t *testing.T, printed map[string]bool) map[string]bool {
	t.Helper()
	c := Defaults()
	c.Process = Process{User: "postern", Group: "postern"}
	c.ACME.Enabled, c.ACME.Hostnames = true, []string{"mail.example.com"}
	c.Autoconfig = Autoconfig{Enabled: true, Address: ":443", IMAPPort: 993}
	c.TLS.Certificates = []CertificateFiles{{CertFile: "c", KeyFile: "k"}}
	c.Listeners[0].ClientCertificates = "request"
	c.Listeners[0].DNSBL, c.Listeners[0].DNSBLThreshold = []DNSBL{{Zone: "z.example", Weight: 1}}, 1
	c.Auth.SCRAMIterations = 4096
	c.Auth.CertificateMap = map[string]string{"CN=a": "a@example.com"}
	c.SendAs = map[string]SendAs{"a@example.com": {}}
	c.MailAuth.DKIMKeys = []DKIMKey{{Domain: "example.com", Selector: "s", KeyFile: "k"}}
	c.SendLimits.Users = map[string]UserSendLimits{"local:root": {}}
	c.Check.PublicAddresses = []netip.Addr{netip.MustParseAddr("192.0.2.1")}
	c.Abuse.Window = time.Minute
	c.Milters = []Milter{{Name: "m", Address: "inet:127.0.0.1:1", Roles: []Role{RoleMX}, DefaultAction: DefaultMilterAction,
		ConnectTimeout: time.Second, CommandTimeout: time.Second, ContentTimeout: time.Second}}
	var b bytes.Buffer
	if err := c.WriteTOML(&b, nil); err != nil {
		t.Fatal(err)
	}
	var tree map[string]any
	if _, err := toml.Decode(b.String(), &tree); err != nil {
		t.Fatal(err)
	}
	if printed != nil {
		keyPaths(nil, tree, printed)
	}
	d := &decoder{bad: map[string]bool{}, known: map[string]bool{}}
	d.config(tree, "/", fixedHost)
	if len(d.known) < 100 {
		t.Fatalf("only %d known keys recorded", len(d.known))
	}
	return d.known
}

// TestWriteTOMLChanged: with the defaults as base, only what differs
// from them is printed (postconf -n), with its effective value.
func TestWriteTOMLChanged(t *testing.T) {
	p := write(t, "hostname = \"host.example.net\"\n[tls]\nself_signed = true\n[limits]\nmax_message_size = \"10MB\"\nmax_recipients = 100\n[aliases]\n\"Info@Host.Example.NET\" = \"a@host.example.net\"\n")
	c, err := load(p, fixedHost)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := c.WriteTOML(&b, defaults(fixedHost)); err != nil {
		t.Fatal(err)
	}
	// hostname and max_recipients are the defaults' values: left out.
	want := `[aliases]
"Info@host.example.net" = ["a@host.example.net"]

[limits]
max_message_size = 10000000

[tls]
self_signed = true
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

// diffFields names the fields in which a and b differ.
func diffFields(a, b reflect.Value, path string) string {
	if a.Kind() == reflect.Struct {
		var out strings.Builder
		for i := 0; i < a.NumField(); i++ {
			out.WriteString(diffFields(a.Field(i), b.Field(i), path+"."+a.Type().Field(i).Name))
		}
		return out.String()
	}
	if !reflect.DeepEqual(a.Interface(), b.Interface()) {
		return path + ": " + fmt.Sprintf("%#v != %#v", a.Interface(), b.Interface()) + "\n"
	}
	return ""
}

// canon returns v as nested maps and slices in which an empty slice or
// map is nil: TOML has no nil, and none of the keys tells them apart.
func canon(v reflect.Value) any {
	switch v.Kind() {
	case reflect.Struct:
		if v.Type().PkgPath() != "postern/internal/config" {
			return v.Interface() // netip, time: comparable as they are
		}
		m := map[string]any{}
		for i := 0; i < v.NumField(); i++ {
			m[v.Type().Field(i).Name] = canon(v.Field(i))
		}
		return m
	case reflect.Slice:
		if v.Len() == 0 {
			return nil
		}
		out := make([]any, v.Len())
		for i := range out {
			out[i] = canon(v.Index(i))
		}
		return out
	case reflect.Map:
		if v.Len() == 0 {
			return nil
		}
		m := map[string]any{}
		for _, k := range v.MapKeys() {
			m[fmt.Sprint(k.Interface())] = canon(v.MapIndex(k))
		}
		return m
	}
	return v.Interface()
}
