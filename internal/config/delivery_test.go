package config

import (
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// TestDeliveryTables loads every key of the delivery, DNS, smarthost,
// LMTP, mail-authentication and directory tables.
func TestDeliveryTables(t *testing.T) {
	dir := t.TempDir()
	c := loadText(t, dir, selfSigned+`[dns]
servers = ["127.0.0.1:53", "[::1]:5353"]
trust_ad = true
timeout = "2s"
[delivery]
workers = 4
retry_first = "30s"
retry_max = "2h"
give_up = "72h"
delay_warning = "0s"
idle_timeout = "10s"
max_messages_per_connection = 20
max_connections_per_host = 3
max_idle_per_host = 0
ca_file = "private-ca.pem"
direct_local = false
[delivery.tls_minimum]
"*" = "encrypt"
"Bank.example" = "verify"
[smarthost]
address = "relay.example.net:465"
implicit_tls = true
username = "postern"
password_file = "relay.pw"
domains = ["Example.ORG"]
ca_file = "/etc/postern/relay-ca.pem"
[lmtp]
network = "unix"
address = "lmtp.sock"
[mail_auth]
check = false
report_only = true
authserv_id = "MX.example.com"
max_dkim_signatures = 2
sign = false
[directory]
backend = "postgres"
postgres_dsn_file = "/etc/postern/pg.dsn"
`)
	if want := (DNS{Servers: []string{"127.0.0.1:53", "[::1]:5353"}, TrustAD: true, Timeout: 2 * time.Second}); !reflect.DeepEqual(c.DNS, want) {
		t.Errorf("dns = %+v, want %+v", c.DNS, want)
	}
	wantD := Delivery{Workers: 4, RetryFirst: 30 * time.Second, RetryMax: 2 * time.Hour, GiveUp: 72 * time.Hour,
		DelayWarning: 0, IdleTimeout: 10 * time.Second, MaxMessagesPerConnection: 20, MaxConnectionsPerHost: 3,
		MaxIdlePerHost: 0, TLSMinimum: map[string]string{"*": "encrypt", "bank.example": "verify"},
		CAFile: filepath.Join(dir, "private-ca.pem"), DirectLocal: false}
	if !reflect.DeepEqual(c.Delivery, wantD) {
		t.Errorf("delivery = %+v, want %+v", c.Delivery, wantD)
	}
	wantS := Smarthost{Address: "relay.example.net:465", ImplicitTLS: true, Username: "postern",
		PasswordFile: filepath.Join(dir, "relay.pw"), Domains: []string{"example.org"}, CAFile: "/etc/postern/relay-ca.pem"}
	if !reflect.DeepEqual(c.Smarthost, wantS) {
		t.Errorf("smarthost = %+v, want %+v", c.Smarthost, wantS)
	}
	if want := (LMTP{Network: "unix", Address: filepath.Join(dir, "lmtp.sock")}); c.LMTP != want {
		t.Errorf("lmtp = %+v, want %+v", c.LMTP, want)
	}
	if want := (MailAuth{Check: false, ReportOnly: true, AuthservID: "mx.example.com", MaxDKIMSignatures: 2, Sign: false}); !reflect.DeepEqual(c.MailAuth, want) {
		t.Errorf("mail_auth = %+v, want %+v", c.MailAuth, want)
	}
	if want := (Directory{Backend: "postgres", PostgresDSNFile: "/etc/postern/pg.dsn"}); c.Directory != want {
		t.Errorf("directory = %+v, want %+v", c.Directory, want)
	}
}

// TestDeliveryErrors checks each refusal names its key.
func TestDeliveryErrors(t *testing.T) {
	checkRefusals(t, selfSigned, []refusal{
		{"[dns]\nservers = [\"8.8.8.8\"]", `dns.servers[0]: want ip:port, got "8.8.8.8"`},
		{"[dns]\ntimeout = \"0s\"", "dns.timeout: must be greater than 0"},
		{"[dns]\nnameservers = []", `unknown key "dns.nameservers"`},
		{"[delivery]\nworkers = 0", "delivery.workers: must be at least 1, got 0"},
		{"[delivery]\nretry_first = \"2h\"", "delivery.retry_max: shorter than retry_first (1h0m0s < 2h0m0s)"},
		{"[delivery]\ndelay_warning = \"-1s\"", `delivery.delay_warning: duration "-1s" must not be negative`},
		{"[delivery.tls_minimum]\n\"example.com\" = \"strict\"", `delivery.tls_minimum."example.com": want "none", "encrypt" or "verify", got "strict"`},
		{"[delivery.tls_minimum]\n\"example.com\" = 1", `delivery.tls_minimum."example.com": expected a string, got integer 1`},
		{"[smarthost]\nusername = \"x\"", "smarthost.address: required when other smarthost keys are set"},
		{"[smarthost]\nca_file = \"x.pem\"", "smarthost.address: required when other smarthost keys are set"},
		{"[delivery]\nca_file = 1", "delivery.ca_file: expected a string"},
		{"[smarthost]\naddress = \"relay.example.net:587\"\nusername = \"x\"", "smarthost.username: username and password_file go together"},
		{"[smarthost]\naddress = \"relay.example.net\"", `smarthost.address: want host:port, got "relay.example.net"`},
		{"[lmtp]\nnetwork = \"udp\"\naddress = \"x\"", `lmtp.network: want "unix" or "tcp", got "udp"`},
		{"[lmtp]\nnetwork = \"tcp\"", "lmtp.address: required with lmtp.network"},
		{"[mail_auth]\nmax_dkim_signatures = 1000", "mail_auth.max_dkim_signatures"},
		{"[directory]\nbackend = \"ldap\"", `directory.backend: want "file" or "postgres", got "ldap"`},
		{"[directory]\nbackend = \"postgres\"", `directory.postgres_dsn_file: required with backend = "postgres"`},
	})
}
