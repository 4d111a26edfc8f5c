package config

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const full = `
hostname = "Mail.Example.COM"
data_dir = "data"
local_domains = ["Example.com", "example.org"]
postmaster = "hostmaster@Example.com"

[log]
level = "debug"
format = "json"

[http]
address = ""

[tls]
cert_file = "/etc/postern/cert.pem"
key_file = "tls/key.pem"
min_version = "1.3"

[[listener]]
role = "mx"
address = "0.0.0.0:25"

[[listener]]
name = "sub"
role = "submission"
address = "[::1]:587"
auth_mechanisms = ["plain"]

[[listener]]
role = "submissions"
address = "localhost:465"

[limits]
max_message_size = "10MB"
max_recipients = 50
max_errors = 3
error_delay_after = 2
error_delay = "250ms"
command_timeout = "2m"
data_timeout = "90s"
data_time_limit = "5m"
max_header_size = "128KiB"
max_data_in_flight = "2GiB"
max_data_in_memory = 33554432
auth_fail_delay = "0s"
shutdown_timeout = "1m30s"
restart_drain_timeout = "4s"

[auth]
cache_ttl = "0s"
argon2_time = 3
argon2_memory_kib = 131072
argon2_threads = 4

[spool]
segment_size = 1048576

[aliases]
"sales@Example.COM" = ["alice@example.com", "Bob@Example.org"]
"info@example.org" = ["alice@example.com"]

[send_as."alice@example.com"]
addresses = ["sales@EXAMPLE.com"]
domains = ["Example.NET"]

[send_as."bob@example.org"]
`

// withDerived completes want, a Config written out in a test, with what
// Load sets without being asked: the defaults of the newer tables and the
// values derived from other keys.
func withDerived(want *Config) *Config {
	want.setNewDefaults()
	want.MailAuth.AuthservID = want.Hostname
	want.OAuth.UserClaim = DefaultJWTUserClaim
	want.Sendmail.Domain = domainOf(want.Postmaster)
	want.SRS.SecretFile = want.DefaultSRSSecretFile()
	return want
}

func TestLoadFull(t *testing.T) {
	dir := t.TempDir()
	c := loadText(t, dir, full)
	want := withDerived(&Config{
		Source:       filepath.Join(dir, "postern.toml"),
		Hostname:     "mail.example.com",
		DataDir:      filepath.Join(dir, "data"),
		LocalDomains: []string{"example.com", "example.org"},
		Postmaster:   "hostmaster@example.com",
		Log:          Log{Level: slog.LevelDebug, Format: LogJSON},
		HTTP:         HTTP{Address: ""},
		TLS: TLS{
			CertFile:   "/etc/postern/cert.pem",
			KeyFile:    filepath.Join(dir, "tls/key.pem"),
			MinVersion: tls.VersionTLS13,
		},
		Listeners: withListenerDefaults([]Listener{
			{Name: "mx", Role: RoleMX, Address: "0.0.0.0:25"},
			{Name: "sub", Role: RoleSubmission, Address: "[::1]:587", AuthMechanisms: []string{"PLAIN"}},
			{Name: "submissions", Role: RoleSubmissions, Address: "localhost:465", AuthMechanisms: []string{"PLAIN", "LOGIN"}},
		}),
		Limits: Limits{
			MaxMessageSize:      10_000_000,
			MaxRecipients:       50,
			MaxErrors:           3,
			ErrorDelayAfter:     2,
			ErrorDelay:          250 * time.Millisecond,
			CommandTimeout:      2 * time.Minute,
			DataTimeout:         90 * time.Second,
			DataTimeLimit:       5 * time.Minute,
			MaxHeaderSize:       128 << 10,
			MaxDataInFlight:     2 << 30,
			MaxDataInMemory:     32 << 20,
			AuthFailDelay:       0,
			ShutdownTimeout:     90 * time.Second,
			RestartDrainTimeout: 4 * time.Second,
		},
		Auth:  Auth{CacheTTL: 0, Argon2Time: 3, Argon2MemoryKiB: 131072, Argon2Threads: 4},
		Spool: Spool{SegmentSize: 1 << 20},
		Aliases: map[string][]string{
			"sales@example.com": {"alice@example.com", "Bob@example.org"},
			"info@example.org":  {"alice@example.com"},
		},
		SendAs: map[string]SendAs{
			"alice@example.com": {Addresses: []string{"sales@example.com"}, Domains: []string{"example.net"}},
			"bob@example.org":   {},
		},
	})
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}
	if cert, key := c.TLSFiles(); cert != "/etc/postern/cert.pem" || key != filepath.Join(dir, "tls/key.pem") {
		t.Errorf("TLSFiles = %s, %s", cert, key)
	}
	if got := c.UsersFile(); got != filepath.Join(dir, "data", "users.json") {
		t.Errorf("UsersFile = %s", got)
	}
	if got := c.SpoolDir(); got != filepath.Join(dir, "data", "queue") {
		t.Errorf("SpoolDir = %s", got)
	}
	if got := c.MailDir(); got != filepath.Join(dir, "data", "mail") {
		t.Errorf("MailDir = %s", got)
	}
	if !c.IsLocalDomain("EXAMPLE.org") || c.IsLocalDomain("example.net") {
		t.Error("IsLocalDomain")
	}
}

func TestDefaults(t *testing.T) {
	dir := t.TempDir()
	c := loadText(t, dir, "[tls]\nself_signed = true\n")
	want := withDerived(&Config{
		Source:       filepath.Join(dir, "postern.toml"),
		Hostname:     "host.example.net",
		DataDir:      "/var/lib/postern",
		LocalDomains: []string{"host.example.net"},
		Postmaster:   "postmaster@host.example.net",
		Log:          Log{Level: slog.LevelInfo, Format: "text"},
		HTTP:         HTTP{Address: "127.0.0.1:2580"},
		TLS:          TLS{SelfSigned: true, MinVersion: tls.VersionTLS12},
		Listeners: []Listener{
			{Name: "mx", Role: RoleMX, Address: ":25", ListenerScreen: ListenerScreen{DNSBLThreshold: 1}},
			{Name: "submission", Role: RoleSubmission, Address: ":587", AuthMechanisms: []string{"PLAIN", "LOGIN"}, ListenerScreen: ListenerScreen{DNSBLThreshold: 1}},
			{Name: "submissions", Role: RoleSubmissions, Address: ":465", AuthMechanisms: []string{"PLAIN", "LOGIN"}, ListenerScreen: ListenerScreen{DNSBLThreshold: 1}},
		},
		Limits: Limits{
			MaxMessageSize:      36700160,
			MaxRecipients:       100,
			MaxErrors:           20,
			ErrorDelayAfter:     10,
			ErrorDelay:          time.Second,
			CommandTimeout:      5 * time.Minute,
			DataTimeout:         3 * time.Minute,
			DataTimeLimit:       10 * time.Minute,
			MaxHeaderSize:       262144,
			MaxDataInFlight:     1 << 30,
			MaxDataInMemory:     64 << 20,
			AuthFailDelay:       time.Second,
			ShutdownTimeout:     30 * time.Second,
			RestartDrainTimeout: 10 * time.Second,
		},
		Auth:    Auth{CacheTTL: 5 * time.Minute, Argon2Time: 2, Argon2MemoryKiB: 65536, Argon2Threads: 1},
		Spool:   Spool{SegmentSize: 67108864},
		Aliases: map[string][]string{},
		SendAs:  map[string]SendAs{},
	})
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}
	if !c.Delivery.DirectLocal {
		t.Error("delivery.direct_local is off by default, want on")
	}
	cert, key := c.TLSFiles()
	if cert != "/var/lib/postern/tls/cert.pem" || key != "/var/lib/postern/tls/key.pem" || c.SelfSignedDir() != "/var/lib/postern/tls" {
		t.Errorf("TLSFiles = %s, %s", cert, key)
	}
}

func TestDefaultsHostname(t *testing.T) {
	p := write(t, "[tls]\nself_signed = true\n")
	_, err := load(p, func() (string, error) { return "", errors.New("no uts") })
	if err == nil || err.Error() != p+`: hostname: not set, and the system host name is unavailable: no uts` {
		t.Errorf("err = %v", err)
	}
	_, err = load(p, func() (string, error) { return "box_1", nil })
	if err == nil || !strings.HasPrefix(err.Error(), p+`: hostname: not set, and the system host name is not a valid DNS name: "box_1"`) {
		t.Errorf("err = %v", err)
	}
	// A single-label system name is a valid DNS name.
	if c, err := load(p, func() (string, error) { return "box", nil }); err != nil || c.Hostname != "box" {
		t.Errorf("c = %+v, err = %v", c, err)
	}
}

func TestExampleFile(t *testing.T) {
	c, err := Load("../../postern.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Hostname != "mail.example.com" || !reflect.DeepEqual(c.LocalDomains, []string{"example.com"}) {
		t.Errorf("names %q %q", c.Hostname, c.LocalDomains)
	}
	if c.TLS.CertFile != "/etc/postern/tls/fullchain.pem" || c.TLS.KeyFile != "/etc/postern/tls/privkey.pem" || c.TLS.SelfSigned {
		t.Errorf("tls %+v", c.TLS)
	}
	var addrs []string
	for _, l := range c.Listeners {
		addrs = append(addrs, l.Name+"="+string(l.Role)+"@"+l.Address)
	}
	if got := strings.Join(addrs, " "); got != "mx=mx@:25 submission=submission@:587 submissions=submissions@:465" {
		t.Errorf("listeners %s", got)
	}
	if len(c.Aliases) != 2 || len(c.SendAs) != 1 || len(c.Aliases["root@example.com"]) != 1 {
		t.Errorf("aliases %v send_as %v", c.Aliases, c.SendAs)
	}
	if c.Limits.MaxMessageSize != 35<<20 || c.Spool.SegmentSize != 64<<20 {
		t.Errorf("sizes %d %d", c.Limits.MaxMessageSize, c.Spool.SegmentSize)
	}
}

func TestDev(t *testing.T) {
	c := Dev("")
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "./postern-data" || c.Hostname != "localhost" || !c.TLS.SelfSigned || c.Source != "" {
		t.Errorf("dev %+v", c)
	}
	if got := Dev("/tmp/x").SpoolDir(); got != "/tmp/x/queue" {
		t.Errorf("SpoolDir = %s", got)
	}
	var addrs []string
	for _, l := range c.Listeners {
		addrs = append(addrs, string(l.Role)+"@"+l.Address)
	}
	if got := strings.Join(addrs, " "); got != "mx@127.0.0.1:2525 submission@127.0.0.1:2587 submissions@127.0.0.1:2465" {
		t.Errorf("listeners %s", got)
	}
	// Each call returns its own value.
	Dev("").Listeners[0].Address = "changed"
	if Dev("").Listeners[0].Address != "127.0.0.1:2525" {
		t.Error("Dev shares state between calls")
	}
}

func TestUnknownKeys(t *testing.T) {
	p := write(t, `
hostnme = "x"
[tls]
self_signed = true
selfsigned = true
[[listener]]
role = "mx"
adress = "0.0.0.0:25"
address = ":25"
[limits.extra]
x = 1
[send_as."alice@host.example.net"]
adresses = []
`)
	_, err := load(p, fixedHost)
	want := []string{
		p + `: unknown key "hostnme"`,
		p + `: unknown key "tls.selfsigned"`,
		p + `: unknown key "listener.adress"`,
		p + `: unknown key "limits.extra"`,
		p + `: unknown key "send_as.\"alice@host.example.net\".adresses"`,
	}
	checkErrors(t, err, want)
}

func TestSyntaxError(t *testing.T) {
	p := write(t, "hostname = \n")
	_, err := Load(p)
	if err == nil || !strings.HasPrefix(err.Error(), p+": toml: line 1") {
		t.Errorf("err = %v", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "none.toml")); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestSize(t *testing.T) {
	for s, want := range map[string]int64{
		"0": 0, "1048576": 1 << 20, "35MiB": 35 << 20, "10MB": 10_000_000, "10 MB": 10_000_000,
		"1KiB": 1024, "2kB": 2000, "2KB": 2000, "1GiB": 1 << 30, "3GB": 3e9, "512B": 512, " 7 B ": 7,
	} {
		if got, err := parseSize(s); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "MiB", "-1MiB", "+1", "1.5MiB", "10mb", "1TiB", "9223372036854775807KiB", "x"} {
		if _, err := parseSize(s); err == nil {
			t.Errorf("parseSize(%q): no error", s)
		}
	}
}

func FuzzLoad(f *testing.F) {
	f.Add([]byte(full))
	f.Add([]byte("[tls]\nself_signed = true\n"))
	f.Add([]byte("listener = 5\n[aliases]\nx = 3\n[send_as]\ny = 1\n"))
	f.Add([]byte("[[listener]]\nrole = \"submission\"\naddress = \"[::1:25\"\nauth_mechanisms = [1, \"x\"]\n"))
	if b, err := os.ReadFile("../../postern.example.toml"); err == nil {
		f.Add(b)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "postern.toml")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := load(p, fixedHost)
		if err == nil {
			if c == nil {
				t.Fatal("nil Config without error")
			}
			if err := c.Validate(); err != nil {
				t.Fatalf("Load accepted a Config that does not validate: %v", err)
			}
		}
	})
}

func TestEmptyFile(t *testing.T) {
	p := write(t, "")
	_, err := load(p, fixedHost)
	checkErrors(t, err, []string{p + `: tls: cert_file and key_file are required unless self_signed = true`})
}

func TestDataShares(t *testing.T) {
	l := defaultLimits()
	if a, n := l.DataShares(); a != 64<<20 || n != 256<<20 {
		t.Errorf("default shares %d, %d", a, n)
	}
	l.MaxDataInFlight = l.MaxMessageSize // the smallest allowed
	if a, n := l.DataShares(); a != l.MaxMessageSize || n != l.MaxMessageSize {
		t.Errorf("shares %d, %d: each must take a message of max_message_size", a, n)
	}
}

// TestConfigIsAPlainValue: loading a file twice gives equal Configs, and
// a changed key makes them differ, so that a reload can compare the
// Config it loads with the one that runs (reflect.DeepEqual).
func TestConfigIsAPlainValue(t *testing.T) {
	p := write(t, full)
	a, err := load(p, fixedHost)
	if err != nil {
		t.Fatal(err)
	}
	b, err := load(p, fixedHost)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("two loads of one file differ:\n%+v\n%+v", a, b)
	}
	b.Aliases["new@example.org"] = []string{"alice@example.com"}
	b.Abuse.IPBanAfter++
	if reflect.DeepEqual(a, b) {
		t.Fatal("a changed Config compares equal")
	}
	if _, ok := a.Aliases["new@example.org"]; ok {
		t.Fatal("two loads share their maps")
	}
}
