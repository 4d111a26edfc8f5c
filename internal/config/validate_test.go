package config

import (
	"strings"
	"testing"
)

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		text string   // appended to `hostname = "mail.example.com"`; [tls] self_signed added when absent
		want []string // errors, without the "FILE: " prefix
	}{
		{"hostname invalid", `hostname = "mail_example.com"`,
			[]string{`hostname: "mail_example.com" is not a valid DNS name (character '_')`}},
		{"hostname trailing dot", `hostname = "mail.example.com."`,
			[]string{`hostname: "mail.example.com." ends with a dot; write the name without it`}},
		{"hostname label too long", `hostname = "` + strings.Repeat("a", 64) + `.com"`,
			[]string{`hostname: "` + strings.Repeat("a", 64) + `.com" has a label longer than 63 characters`}},
		{"hostname hyphen", `hostname = "-mail.example.com"`,
			[]string{`hostname: "-mail.example.com" has a label that starts or ends with a hyphen`}},
		{"hostname type", `hostname = 5`,
			[]string{`hostname: expected a string, got integer 5`}},
		{"data_dir empty", `data_dir = ""`,
			[]string{`data_dir: must not be empty`}},
		{"local_domains duplicate", `local_domains = ["example.com", "EXAMPLE.COM"]`,
			[]string{`local_domains[1]: "example.com" is listed twice (also local_domains[0])`}},
		{"local_domains invalid", `local_domains = ["ex ample.com"]`,
			[]string{`local_domains[0]: "ex ample.com" is not a valid DNS name (character ' ')`}},
		{"local_domains empty label", `local_domains = ["example..com"]`,
			[]string{`local_domains[0]: "example..com" has an empty label`}},
		{"local_domains unicode", `local_domains = ["exämple.com"]`,
			[]string{`local_domains[0]: "exämple.com" is not ASCII; use its A-label (xn--) form`}},
		{"local_domains not array", `local_domains = "example.com"`,
			[]string{`local_domains: expected an array of strings, got string "example.com"`}},
		{"local_domains element type", `local_domains = ["example.com", 7]`,
			[]string{`local_domains[1]: expected a string, got integer 7`}},
		{"local_domains none", `local_domains = []`,
			[]string{`local_domains: must name at least one domain`}},
		{"postmaster no domain", `postmaster = "postmaster"`,
			[]string{`postmaster: "postmaster" is not an address (local@domain)`}},
		{"postmaster bad local part", `postmaster = "a b@example.com"`,
			[]string{`postmaster: "a b@example.com" has a character ' ' not allowed in a local part`}},
		{"postmaster bad domain", `postmaster = "pm@exa mple.com"`,
			[]string{`postmaster: domain of "pm@exa mple.com": "exa mple.com" is not a valid DNS name (character ' ')`}},
		{"log", "[log]\nlevel = \"verbose\"\nformat = \"xml\"",
			[]string{`log.level: "verbose" is not debug, info, warn or error`, `log.format: "xml" is not text or json`}},
		{"log not table", `log = 5`,
			[]string{`log: expected a table, got integer 5`}},
		{"http no port", "[http]\naddress = \"127.0.0.1\"",
			[]string{`http.address: missing port in address "127.0.0.1"`}},
		{"tls nothing", "[tls]\nmin_version = \"1.2\"",
			[]string{`tls: cert_file and key_file are required unless self_signed = true`}},
		{"tls cert only", "[tls]\ncert_file = \"/c.pem\"",
			[]string{`tls.key_file: is required with cert_file`}},
		{"tls key only", "[tls]\nkey_file = \"/k.pem\"",
			[]string{`tls.cert_file: is required with key_file`}},
		{"tls both", "[tls]\nself_signed = true\ncert_file = \"/c.pem\"\nkey_file = \"/k.pem\"",
			[]string{`tls.self_signed: is true, but cert_file or key_file is set; use one or the other`}},
		{"tls min_version", "[tls]\nself_signed = true\nmin_version = \"1.1\"",
			[]string{`tls.min_version: "1.1" is not "1.2" or "1.3"`}},
		{"tls min_version float", "[tls]\nself_signed = true\nmin_version = 1.3",
			[]string{`tls.min_version: expected a string, got float 1.3`}},
		{"tls self_signed type", "[tls]\nself_signed = \"yes\"",
			[]string{`tls.self_signed: expected true or false, got string "yes"`}},
		{"listener missing port", "[[listener]]\nrole = \"mx\"\naddress = \":25\"\n[[listener]]\nrole = \"submission\"\naddress = \"0.0.0.0\"",
			[]string{`listener[1].address: missing port in address "0.0.0.0"`}},
		{"listener bad port", "[[listener]]\nrole = \"mx\"\naddress = \":99999\"",
			[]string{`listener[0].address: port "99999" in address ":99999" is not a number from 0 to 65535`}},
		{"listener named port", "[[listener]]\nrole = \"mx\"\naddress = \":smtp\"",
			[]string{`listener[0].address: port "smtp" in address ":smtp" is not a number from 0 to 65535`}},
		{"listener bad host", "[[listener]]\nrole = \"mx\"\naddress = \"a_b:25\"",
			[]string{`listener[0].address: host in address "a_b:25": "a_b" is not a valid DNS name (character '_')`}},
		{"listener no role", "[[listener]]\naddress = \":25\"",
			[]string{`listener[0].role: missing; set mx, submission or submissions`}},
		{"listener bad role", "[[listener]]\nrole = \"relay\"\naddress = \":25\"",
			[]string{`listener[0].role: "relay" is not mx, submission or submissions`}},
		{"listener role type", "[[listener]]\nrole = 25\naddress = \":25\"",
			[]string{`listener[0].role: expected a string, got integer 25`}},
		{"listener no address", "[[listener]]\nrole = \"mx\"",
			[]string{`listener[0].address: missing; set host:port`}},
		{"listener duplicate name", "[[listener]]\nrole = \"mx\"\naddress = \":25\"\n[[listener]]\nrole = \"mx\"\naddress = \":2525\"",
			[]string{`listener[1].name: "mx" is already the name of listener[0]; give each listener its own name`}},
		{"listener duplicate address", "[[listener]]\nrole = \"mx\"\naddress = \":25\"\n[[listener]]\nname = \"mx2\"\nrole = \"mx\"\naddress = \":25\"",
			[]string{`listener[1].address: ":25" is already the address of listener[0]`}},
		{"listener on http address", "[http]\naddress = \"127.0.0.1:2580\"\n[[listener]]\nrole = \"mx\"\naddress = \"127.0.0.1:2580\"",
			[]string{`listener[0].address: "127.0.0.1:2580" is already http.address`}},
		{"listener bad name", "[[listener]]\nname = \"my mx\"\nrole = \"mx\"\naddress = \":25\"",
			[]string{`listener[0].name: "my mx" may contain only letters, digits, '-', '_' and '.'`}},
		{"listener auth on mx", "[[listener]]\nrole = \"mx\"\naddress = \":25\"\nauth_mechanisms = [\"PLAIN\"]",
			[]string{`listener[0].auth_mechanisms: not allowed on an mx listener (authentication is for submission)`}},
		{"listener auth mechanisms", "[[listener]]\nrole = \"submission\"\naddress = \":587\"\nauth_mechanisms = [\"DIGEST-MD5\", \"PLAIN\", \"plain\"]",
			[]string{`listener[0].auth_mechanisms[0]: "DIGEST-MD5" is not a supported mechanism (PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-1, SCRAM-SHA-1-PLUS, SCRAM-SHA-256, SCRAM-SHA-256-PLUS, OAUTHBEARER, XOAUTH2, EXTERNAL)`, `listener[0].auth_mechanisms[2]: "PLAIN" is listed twice`}},
		{"listener auth none", "[[listener]]\nrole = \"submissions\"\naddress = \":465\"\nauth_mechanisms = []",
			[]string{`listener[0].auth_mechanisms: must name at least one mechanism`}},
		{"listener none", `listener = []`,
			[]string{`listener: at least one listener is needed`}},
		{"listener not array", `listener = 5`,
			[]string{`listener: expected an array of tables ([[listener]]), got integer 5`}},
		{"listener inline element", `listener = [5]`,
			[]string{`listener[0]: expected a table, got integer 5`, `listener: at least one listener is needed`}},
		{"limits", `[limits]
max_message_size = 0
max_recipients = -1
max_errors = "10"
command_timeout = 300
data_timeout = "3 minutes"
auth_fail_delay = "-1s"
shutdown_timeout = "0s"
restart_drain_timeout = "-1s"
data_time_limit = "0s"
max_header_size = 0
max_data_in_memory = -1`,
			[]string{
				`limits.max_errors: expected an integer, got string "10"`,
				`limits.command_timeout: expected a duration string such as "5m" or "30s", got integer 300`,
				`limits.data_timeout: invalid duration "3 minutes" (use a number with a unit: ms, s, m or h, as in "90s" or "5m")`,
				`limits.auth_fail_delay: duration "-1s" must not be negative`,
				`limits.restart_drain_timeout: duration "-1s" must not be negative`,
				`limits.max_message_size: must be greater than 0, not 0`,
				`limits.max_recipients: must be greater than 0, not -1`,
				`limits.max_header_size: must be greater than 0, not 0`,
				`limits.max_data_in_memory: must be greater than 0, not -1`,
				`limits.data_time_limit: must be greater than 0`,
				`limits.shutdown_timeout: must be greater than 0`,
			}},
		{"data in flight under the message size", "[limits]\nmax_message_size = \"35MiB\"\nmax_data_in_flight = \"10MiB\"",
			[]string{`limits.max_data_in_flight: must be at least limits.max_message_size (36700160), not 10485760: a message that size could never be taken`}},
		{"limits error delay", "[limits]\nerror_delay_after = 0\nerror_delay = \"-1s\"",
			[]string{
				`limits.error_delay: duration "-1s" must not be negative`,
				`limits.error_delay_after: must be greater than 0, not 0`,
			}},
		{"limits size string", "[limits]\nmax_message_size = \"35 furlongs\"",
			[]string{`limits.max_message_size: invalid size "35 furlongs" (use bytes or a number with B, KiB, MiB, GiB, kB, MB or GB, as in "35MiB")`}},
		{"limits size type", "[limits]\nmax_message_size = 1.5",
			[]string{`limits.max_message_size: expected a number of bytes or a string such as "35MiB", got float 1.5`}},
		{"limits too large", "[limits]\nmax_recipients = 3000000000",
			[]string{`limits.max_recipients: 3000000000 is out of range (-2147483648 to 2147483647)`}},
		{"auth", `[auth]
cache_ttl = "-5m"
argon2_time = 0
argon2_memory_kib = 4
argon2_threads = 256`,
			[]string{
				`auth.cache_ttl: duration "-5m" must not be negative`,
				`auth.argon2_time: 0 is out of range (1 to 4294967295)`,
				`auth.argon2_memory_kib: 4 is out of range (8 to 4294967295)`,
				`auth.argon2_threads: 256 is out of range (1 to 255)`,
			}},
		{"auth memory per thread", "[auth]\nargon2_memory_kib = 16\nargon2_threads = 4",
			[]string{`auth.argon2_memory_kib: must be at least 32 (8 per thread)`}},
		{"spool", "[spool]\nsegment_size = -1",
			[]string{`spool.segment_size: must be greater than 0, not -1`}},
		{"aliases", `local_domains = ["example.com"]
[aliases]
"sales@other.com" = ["a@example.com"]
"x@example.com" = []
"y@example.com" = ["y@EXAMPLE.com", "a@example.com", "a@example.com"]
"z@example.com" = 7
"w@example.com" = ["bad"]
"bad" = ["a@example.com"]`,
			[]string{
				`aliases."z@example.com": expected an address or an array of addresses, got integer 7`,
				`aliases.bad: "bad" is not an address (local@domain)`,
				`aliases."sales@other.com": domain "other.com" is not one of local_domains`,
				`aliases."w@example.com"[0]: "bad" is not an address (local@domain)`,
				`aliases."x@example.com": must name at least one target address`,
				`aliases."y@example.com"[0]: an alias cannot point to itself`,
				`aliases."y@example.com"[2]: "a@example.com" is listed twice`,
			}},
		{"aliases same after lower-casing", "local_domains = [\"example.com\"]\n[aliases]\n\"s@EXAMPLE.com\" = [\"a@example.com\"]\n\"s@example.com\" = [\"b@example.com\"]",
			[]string{`aliases."s@example.com": the same alias as "s@EXAMPLE.com" (domains are compared without case)`}},
		{"aliases not table", `aliases = ["a"]`,
			[]string{`aliases: expected a table, got an array`}},
		{"send_as", `local_domains = ["example.com"]
[send_as."carol@other.com"]
addresses = ["nope"]
domains = ["bad domain"]
[send_as."dave@example.com"]
domains = "example.org"`,
			[]string{
				`send_as."dave@example.com".domains: expected an array of strings, got string "example.org"`,
				`send_as."carol@other.com": domain "other.com" is not one of local_domains`,
				`send_as."carol@other.com".addresses[0]: "nope" is not an address (local@domain)`,
				`send_as."carol@other.com".domains[0]: "bad domain" is not a valid DNS name (character ' ')`,
			}},
		{"send_as entry not table", "[send_as]\n\"x@mail.example.com\" = 5",
			[]string{`send_as."x@mail.example.com": expected a table with addresses and domains, got integer 5`}},
		{"send_as not table", `send_as = 5`,
			[]string{`send_as: expected a table, got integer 5`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := tt.text
			if !strings.Contains(text, "[tls]") {
				text += "\n[tls]\nself_signed = true\n"
			}
			if !strings.HasPrefix(text, "hostname") {
				text = "hostname = \"mail.example.com\"\n" + text
			}
			p := write(t, text)
			_, err := load(p, fixedHost)
			want := make([]string, len(tt.want))
			for i, w := range tt.want {
				want[i] = p + ": " + w
			}
			checkErrors(t, err, want)
		})
	}
}

// TestValidate checks Validate on Configs built in code, where nothing
// has been lower-cased for them.
func TestValidate(t *testing.T) {
	c := Dev("")
	c.Hostname = "LocalHost"
	c.LocalDomains = []string{"Example.com"}
	c.Postmaster = "pm@example.com"
	c.Log.Level = 3
	c.TLS.MinVersion = 0x0302
	c.Listeners[1].AuthMechanisms = nil
	c.Limits.CommandTimeout = 0
	c.Auth.Argon2Threads = 0
	c.Source = "x.toml"
	checkErrors(t, c.Validate(), []string{
		`x.toml: hostname: "LocalHost" must be lower case`,
		`x.toml: local_domains[0]: "Example.com" must be lower case`,
		`x.toml: log.level: INFO+3 is not debug, info, warn or error`,
		`x.toml: tls.min_version: must be TLS 1.2 or 1.3 (0x0302)`,
		`x.toml: listener[1].auth_mechanisms: must name at least one mechanism`,
		`x.toml: limits.command_timeout: must be greater than 0`,
		`x.toml: auth.argon2_threads: must be at least 1`,
	})
	d := Dev("")
	d.Listeners = nil
	d.Source = ""
	checkErrors(t, d.Validate(), []string{`listener: at least one listener is needed`})
}
