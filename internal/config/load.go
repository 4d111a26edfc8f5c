package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Load reads the TOML configuration file at path, applies the defaults
// and validates the result. On failure it returns every problem found,
// joined with errors.Join: syntax errors as "PATH: toml: line N ...",
// and otherwise *FieldError values such as
//
//	postern.toml: unknown key "listener.adress"
//	postern.toml: listener[1].address: missing port in address "0.0.0.0"
//
// Relative paths in the file (data_dir, tls.cert_file, tls.key_file) are
// resolved against the directory of path. When hostname is not set, the
// system host name (os.Hostname) is used.
func Load(path string) (*Config, error) {
	return load(path, os.Hostname)
}

// load is Load with the source of the system host name injected.
func load(path string, hostname func() (string, error)) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return parse(path, data, hostname)
}

// parse decodes data, read from path, into a validated Config.
func parse(path string, data []byte, hostname func() (string, error)) (*Config, error) {
	var tree map[string]any
	if _, err := toml.Decode(string(data), &tree); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	dir := filepath.Dir(path)
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	d := &decoder{problems: problems{file: path}, bad: map[string]bool{}}
	c := d.config(tree, dir, hostname)
	c.Source = path
	errs := d.errs
	if err := c.Validate(); err != nil {
		// Leave out what Validate says about keys that already failed to
		// decode: their value is a default or empty.
		all := []error{err}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			all = j.Unwrap()
		}
		for _, e := range all {
			var fe *FieldError
			if errors.As(e, &fe) && d.bad[fe.Key] {
				continue
			}
			errs = append(errs, e)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

// decoder walks the decoded TOML tree, recording type errors and unknown
// keys.
type decoder struct {
	problems
	// bad holds keys that already have an error, or whose value is
	// derived from another key: Validate's errors about them are left
	// out.
	bad map[string]bool
	// known, when not nil, collects every key unknown was told of (the
	// test that WriteTOML writes them all).
	known map[string]bool
}

func (d *decoder) fail(key string, format string, args ...any) {
	d.bad[key] = true
	d.addf(key, format, args...)
}

// unknown reports the keys of tbl not in known. Unknown keys are named as
// TOML dotted keys without array indexes, like toml.MetaData.Undecoded.
func (d *decoder) unknown(tbl map[string]any, parent []string, known ...string) {
	for _, k := range known {
		if d.known != nil {
			d.known[keyOf(append(slices.Clip(parent), k)...)] = true
		}
	}
	for _, k := range sortedKeys(tbl) {
		if !slices.Contains(known, k) {
			d.add("", fmt.Errorf("unknown key %q", keyOf(append(slices.Clip(parent), k)...)))
		}
	}
}

// describe names the TOML type (and value) of v for error messages.
func describe(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("string %q", v)
	case int64:
		return fmt.Sprintf("integer %d", v)
	case float64:
		return fmt.Sprintf("float %v", v)
	case bool:
		return fmt.Sprintf("boolean %v", v)
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	default:
		return "a date or time"
	}
}

// value returns tbl[name] when it is present and a T. When it is present
// and of another type, it reports the key: "expected " + want.
func value[T any](d *decoder, tbl map[string]any, name, key, want string) (T, bool) {
	v, ok := tbl[name]
	if !ok {
		var zero T
		return zero, false
	}
	x, ok := v.(T)
	if !ok {
		d.fail(key, "expected %s, got %s", want, describe(v))
	}
	return x, ok
}

// str sets *dst to tbl[name] when it is present and a string.
func (d *decoder) str(tbl map[string]any, name, key string, dst *string) bool {
	s, ok := value[string](d, tbl, name, key, "a string")
	if ok {
		*dst = s
	}
	return ok
}

// strs sets *dst to tbl[name] when it is present and an array of strings.
func (d *decoder) strs(tbl map[string]any, name, key string, dst *[]string) bool {
	v, ok := tbl[name]
	if !ok {
		return false
	}
	return d.strList(v, key, dst)
}

func (d *decoder) strList(v any, key string, dst *[]string) bool {
	arr, ok := v.([]any)
	if !ok {
		d.fail(key, "expected an array of strings, got %s", describe(v))
		return false
	}
	out := make([]string, 0, len(arr))
	good := true
	for i, e := range arr {
		s, ok := e.(string)
		if !ok {
			d.fail(fmt.Sprintf("%s[%d]", key, i), "expected a string, got %s", describe(e))
			good = false
			continue
		}
		out = append(out, s)
	}
	if good {
		*dst = out
	}
	return good
}

// strTable calls set with each key of the table tbl[name] and its value,
// in key order; section is the key of tbl ("delivery"). A value that is
// not a string is reported: "expected " + want.
func (d *decoder) strTable(tbl map[string]any, section, name, want string, set func(k, v string)) {
	m := d.table(tbl, name, keyOf(section, name))
	for _, k := range sortedKeys(m) {
		if v, ok := value[string](d, m, k, keyOf(section, name, k), want); ok {
			set(k, v)
		}
	}
}

// boolean sets *dst to tbl[name] when it is present and a boolean.
func (d *decoder) boolean(tbl map[string]any, name, key string, dst *bool) {
	if b, ok := value[bool](d, tbl, name, key, "true or false"); ok {
		*dst = b
	}
}

// integer returns tbl[name] when it is present and an integer from lo to
// hi.
func (d *decoder) integer(tbl map[string]any, name, key string, lo, hi int64) (int64, bool) {
	n, ok := value[int64](d, tbl, name, key, "an integer")
	if !ok {
		return 0, false
	}
	if n < lo || n > hi {
		d.fail(key, "%d is out of range (%d to %d)", n, lo, hi)
		return 0, false
	}
	return n, true
}

// field is a key of a table, by its name in the table, and where its
// value goes.
type field[T any] struct {
	name string
	dst  *T
}

// ints sets each field to its key's value in tbl when that is an integer
// from lo to hi; prefix is the key of tbl with a dot ("delivery.").
func (d *decoder) ints(tbl map[string]any, prefix string, lo, hi int64, fields []field[int]) {
	for _, f := range fields {
		if n, ok := d.integer(tbl, f.name, prefix+f.name, lo, hi); ok {
			*f.dst = int(n)
		}
	}
}

// size returns tbl[name] when it is present and a size: an integer number
// of bytes, or a string such as "35MiB" (see parseSize).
func (d *decoder) size(tbl map[string]any, name, key string) (int64, bool) {
	v, ok := tbl[name]
	if !ok {
		return 0, false
	}
	switch v := v.(type) {
	case int64:
		return v, true
	case string:
		n, err := parseSize(v)
		if err != nil {
			d.fail(key, "%v", err)
			return 0, false
		}
		return n, true
	}
	d.fail(key, "expected a number of bytes or a string such as \"35MiB\", got %s", describe(v))
	return 0, false
}

// duration returns tbl[name] when it is present and a Go duration string.
func (d *decoder) duration(tbl map[string]any, name, key string) (time.Duration, bool) {
	s, ok := value[string](d, tbl, name, key, `a duration string such as "5m" or "30s"`)
	if !ok {
		return 0, false
	}
	du, err := parseDuration(s)
	if err != nil {
		d.fail(key, "%v", err)
		return 0, false
	}
	return du, true
}

// durations sets each field to its key's value in tbl when that is a
// duration; prefix is the key of tbl with a dot ("limits.").
func (d *decoder) durations(tbl map[string]any, prefix string, fields []field[time.Duration]) {
	for _, f := range fields {
		if du, ok := d.duration(tbl, f.name, prefix+f.name); ok {
			*f.dst = du
		}
	}
}

// table returns tbl[name] when it is present and a table.
func (d *decoder) table(tbl map[string]any, name, key string) map[string]any {
	t, _ := value[map[string]any](d, tbl, name, key, "a table")
	return t
}

// tables returns the tables of the array of tables [[key]] that v is, in
// order, with their keys ("key[0]"...); what is not a table is reported
// and left out.
func (d *decoder) tables(v any, key string) (keys []string, tables []map[string]any) {
	var elems []any
	switch v := v.(type) {
	case []map[string]any:
		for _, t := range v {
			elems = append(elems, t)
		}
	case []any:
		elems = v
	default:
		d.fail(key, "expected an array of tables ([[%s]]), got %s", key, describe(v))
		return nil, nil
	}
	for i, e := range elems {
		k := fmt.Sprintf("%s[%d]", key, i)
		t, ok := e.(map[string]any)
		if !ok {
			d.fail(k, "expected a table, got %s", describe(e))
			continue
		}
		keys, tables = append(keys, k), append(tables, t)
	}
	return keys, tables
}

// config builds the Config from the top-level table, with defaults.
func (d *decoder) config(tree map[string]any, dir string, hostname func() (string, error)) *Config {
	d.unknown(tree, nil, "hostname", "data_dir", "local_domains", "postmaster",
		"log", "http", "tls", "listener", "limits", "auth", "spool", "aliases", "send_as", "oauth",
		"dns", "delivery", "smarthost", "lmtp", "mail_auth", "directory",
		"acme", "check", "proxy", "admission", "abuse", "send_limits", "redis", "admin",
		"user", "group", "pkcs11", "autoconfig", "sendmail", "srs", "milter")
	c := &Config{
		DataDir:   DefaultDataDir,
		Log:       Log{Level: slog.LevelInfo, Format: LogText},
		HTTP:      HTTP{Address: DefaultHTTPAddress},
		TLS:       TLS{MinVersion: tls.VersionTLS12},
		Listeners: defaultListeners(),
		Limits:    defaultLimits(),
		Auth:      defaultAuth(),
		Spool:     Spool{SegmentSize: DefaultSegmentSize},
		Aliases:   map[string][]string{},
		SendAs:    map[string]SendAs{},
	}
	c.setNewDefaults()
	if d.str(tree, "hostname", "hostname", &c.Hostname) {
		c.Hostname = lower(c.Hostname)
	} else if !d.bad["hostname"] {
		h, err := hostname()
		if err != nil {
			d.fail("hostname", "not set, and the system host name is unavailable: %w", err)
		} else if h = lower(h); checkDNSName(h) != nil {
			d.fail("hostname", "not set, and the system host name is not a valid DNS name: %w", checkDNSName(h))
		} else {
			c.Hostname = h
		}
	}
	d.path(tree, "data_dir", "data_dir", dir, &c.DataDir)
	if d.strs(tree, "local_domains", "local_domains", &c.LocalDomains) {
		for i, s := range c.LocalDomains {
			c.LocalDomains[i] = lower(s)
		}
	} else {
		// Derived from hostname: its problems are reported there.
		d.bad["local_domains"], d.bad["local_domains[0]"] = true, true
		if c.Hostname != "" {
			c.LocalDomains = []string{c.Hostname}
		}
	}
	if d.str(tree, "postmaster", "postmaster", &c.Postmaster) {
		c.Postmaster = normAddress(c.Postmaster)
	} else {
		// Derived from local_domains: its problems are reported there.
		d.bad["postmaster"] = true
		if len(c.LocalDomains) > 0 {
			c.Postmaster = "postmaster@" + c.LocalDomains[0]
		}
	}
	d.log(d.table(tree, "log", "log"), &c.Log)
	if t := d.table(tree, "http", "http"); t != nil {
		d.unknown(t, []string{"http"}, "address", "pprof")
		d.str(t, "address", "http.address", &c.HTTP.Address)
		d.boolean(t, "pprof", "http.pprof", &c.HTTP.Pprof)
	}
	d.tls(d.table(tree, "tls", "tls"), dir, &c.TLS)
	if v, ok := tree["listener"]; ok {
		c.Listeners = d.listeners(v)
	}
	d.limits(d.table(tree, "limits", "limits"), &c.Limits)
	d.auth(d.table(tree, "auth", "auth"), &c.Auth)
	if t := d.table(tree, "spool", "spool"); t != nil {
		d.unknown(t, []string{"spool"}, "segment_size")
		if n, ok := d.size(t, "segment_size", "spool.segment_size"); ok {
			c.Spool.SegmentSize = n
		}
	}
	d.aliases(d.table(tree, "aliases", "aliases"), c.Aliases)
	d.sendAs(d.table(tree, "send_as", "send_as"), c.SendAs)
	d.dns(d.table(tree, "dns", "dns"), dir, &c.DNS)
	d.delivery(d.table(tree, "delivery", "delivery"), dir, &c.Delivery)
	d.smarthost(d.table(tree, "smarthost", "smarthost"), dir, &c.Smarthost)
	d.lmtp(d.table(tree, "lmtp", "lmtp"), dir, &c.LMTP)
	d.mailAuth(d.table(tree, "mail_auth", "mail_auth"), dir, &c.MailAuth)
	d.directory(d.table(tree, "directory", "directory"), dir, &c.Directory)
	d.oauth(d.table(tree, "oauth", "oauth"), dir, &c.OAuth)
	d.acme(d.table(tree, "acme", "acme"), dir, c)
	d.check(d.table(tree, "check", "check"), &c.Check)
	d.proxy(d.table(tree, "proxy", "proxy"), &c.Proxy)
	d.admissionTables(tree, dir, &c.AdmissionTables)
	d.admin(d.table(tree, "admin", "admin"), dir, &c.Admin)                // adminhttp.go
	d.process(tree, &c.Process)                                            // user, group (process.go)
	d.pkcs11Table(d.table(tree, "pkcs11", "pkcs11"), dir, &c.PKCS11)       // pkcs11.go
	d.autoconfig(d.table(tree, "autoconfig", "autoconfig"), &c.Autoconfig) // autoconfig.go
	d.localMail(tree, dir, c)                                              // [sendmail], [srs] (localmail.go)
	if v, ok := tree["milter"]; ok {
		c.Milters = d.milters(v) // milter.go
	}
	c.applyDerived()
	return c
}

// path sets *dst to tbl[name] when it is present and a string, a path
// resolved against dir (the directory of the configuration file).
func (d *decoder) path(tbl map[string]any, name, key, dir string, dst *string) {
	if d.str(tbl, name, key, dst) {
		*dst = resolve(dir, *dst)
	}
}

// resolve makes a relative path p relative to dir.
func resolve(dir, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

func (d *decoder) log(t map[string]any, l *Log) {
	if t == nil {
		return
	}
	d.unknown(t, []string{"log"}, "level", "format", "trace")
	var s string
	if d.str(t, "level", "log.level", &s) {
		switch lower(s) {
		case "debug":
			l.Level = slog.LevelDebug
		case "info":
			l.Level = slog.LevelInfo
		case "warn":
			l.Level = slog.LevelWarn
		case "error":
			l.Level = slog.LevelError
		default:
			d.fail("log.level", "%q is not debug, info, warn or error", s)
		}
	}
	if d.str(t, "format", "log.format", &l.Format) {
		l.Format = lower(l.Format)
	}
	d.strs(t, "trace", "log.trace", &l.Trace)
}

func (d *decoder) tls(t map[string]any, dir string, c *TLS) {
	if t == nil {
		return
	}
	d.unknown(t, []string{"tls"}, "cert_file", "key_file", "self_signed", "min_version", "client_ca_file",
		"certificate", "ca_file", "ticket_rotation")
	d.tlsExtra(t, dir, &c.TLSExtra)
	d.path(t, "cert_file", "tls.cert_file", dir, &c.CertFile)
	if d.str(t, "key_file", "tls.key_file", &c.KeyFile) {
		c.KeyFile = resolveKey(dir, c.KeyFile) // a path, or a pkcs11: URI
	}
	d.path(t, "client_ca_file", "tls.client_ca_file", dir, &c.ClientCAFile)
	d.boolean(t, "self_signed", "tls.self_signed", &c.SelfSigned)
	if d.bad["tls.self_signed"] {
		d.bad["tls"] = true // do not also ask for the files
	}
	var s string
	if d.str(t, "min_version", "tls.min_version", &s) {
		switch s {
		case "1.2":
			c.MinVersion = tls.VersionTLS12
		case "1.3":
			c.MinVersion = tls.VersionTLS13
		default:
			d.fail("tls.min_version", "%q is not \"1.2\" or \"1.3\"", s)
		}
	}
}

func (d *decoder) listeners(v any) []Listener {
	keys, tables := d.tables(v, "listener")
	out := make([]Listener, 0, len(tables))
	for i, t := range tables {
		k := keys[i]
		d.unknown(t, []string{"listener"}, "name", "role", "address", "auth_mechanisms", "client_certificates", "tls_tickets",
			"proxy_protocol", "greet_delay", "dnsbl", "dnsbl_threshold", "allow", "deny")
		l := Listener{ListenerScreen: ListenerScreen{DNSBLThreshold: DefaultDNSBLThreshold}}
		d.listenerTLS(t, k, &l.ListenerTLS)
		d.listenerScreen(t, k, &l.ListenerScreen)
		d.listenerAdmission(t, k, &l.ListenerAdmission)
		var role string
		if d.str(t, "role", k+".role", &role) {
			l.Role = Role(lower(role))
		}
		if !d.str(t, "name", k+".name", &l.Name) && !d.bad[k+".name"] {
			l.Name = string(l.Role)
		}
		d.str(t, "address", k+".address", &l.Address)
		if d.str(t, "client_certificates", k+".client_certificates", &l.ClientCertificates) {
			l.ClientCertificates = lower(l.ClientCertificates)
		}
		if d.strs(t, "auth_mechanisms", k+".auth_mechanisms", &l.AuthMechanisms) {
			for j, m := range l.AuthMechanisms {
				l.AuthMechanisms[j] = strings.ToUpper(m)
			}
		} else if _, set := t["auth_mechanisms"]; !set && (l.Role == RoleSubmission || l.Role == RoleSubmissions) {
			l.AuthMechanisms = DefaultAuthMechanisms()
		}
		if d.bad[k+".role"] {
			// The role is unknown: do not also complain about what
			// depends on it.
			d.bad[k+".name"], d.bad[k+".auth_mechanisms"] = true, true
		}
		out = append(out, l)
	}
	return out
}

func (d *decoder) limits(t map[string]any, l *Limits) {
	if t == nil {
		return
	}
	d.unknown(t, []string{"limits"}, "max_message_size", "max_recipients", "max_errors",
		"error_delay_after", "error_delay", "command_timeout", "data_timeout", "data_time_limit", "auth_fail_delay",
		"shutdown_timeout", "restart_drain_timeout", "max_header_size", "max_data_in_flight", "max_data_in_memory")
	for _, f := range []field[int64]{
		{"max_message_size", &l.MaxMessageSize},
		{"max_header_size", &l.MaxHeaderSize},
		{"max_data_in_flight", &l.MaxDataInFlight},
		{"max_data_in_memory", &l.MaxDataInMemory},
	} {
		if n, ok := d.size(t, f.name, "limits."+f.name); ok {
			*f.dst = n
		}
	}
	d.ints(t, "limits.", math.MinInt32, math.MaxInt32, []field[int]{
		{"max_recipients", &l.MaxRecipients},
		{"max_errors", &l.MaxErrors},
		{"error_delay_after", &l.ErrorDelayAfter},
	})
	d.durations(t, "limits.", []field[time.Duration]{
		{"command_timeout", &l.CommandTimeout},
		{"data_timeout", &l.DataTimeout},
		{"data_time_limit", &l.DataTimeLimit},
		{"auth_fail_delay", &l.AuthFailDelay},
		{"error_delay", &l.ErrorDelay},
		{"shutdown_timeout", &l.ShutdownTimeout},
		{"restart_drain_timeout", &l.RestartDrainTimeout},
	})
}

func (d *decoder) auth(t map[string]any, a *Auth) {
	if t == nil {
		return
	}
	d.unknown(t, []string{"auth"}, "cache_ttl", "argon2_time", "argon2_memory_kib", "argon2_threads",
		"scram_iterations", "require_client_certificate", "certificate_map")
	d.authExtra(t, a)
	if du, ok := d.duration(t, "cache_ttl", "auth.cache_ttl"); ok {
		a.CacheTTL = du
	}
	if n, ok := d.integer(t, "argon2_time", "auth.argon2_time", 1, math.MaxUint32); ok {
		a.Argon2Time = uint32(n)
	}
	if n, ok := d.integer(t, "argon2_memory_kib", "auth.argon2_memory_kib", 8, math.MaxUint32); ok {
		a.Argon2MemoryKiB = uint32(n)
	}
	if n, ok := d.integer(t, "argon2_threads", "auth.argon2_threads", 1, math.MaxUint8); ok {
		a.Argon2Threads = uint8(n)
	}
}

func (d *decoder) aliases(t map[string]any, out map[string][]string) {
	seen := map[string]string{} // normalized alias -> key in the file
	for _, name := range sortedKeys(t) {
		k := keyOf("aliases", name)
		var targets []string
		switch v := t[name].(type) {
		case string: // "info@x" = "alice@x", an alias to one address
			targets = []string{v}
		case []any:
			if !d.strList(v, k, &targets) {
				continue
			}
		default:
			d.fail(k, "expected an address or an array of addresses, got %s", describe(v))
			continue
		}
		for i, s := range targets {
			targets[i] = normAddress(s)
		}
		alias := normAddress(name)
		if prev, dup := seen[alias]; dup {
			d.fail(k, "the same alias as %q (domains are compared without case)", prev)
			continue
		}
		seen[alias] = name
		out[alias] = targets
	}
}

func (d *decoder) sendAs(t map[string]any, out map[string]SendAs) {
	seen := map[string]string{} // normalized user -> key in the file
	for _, user := range sortedKeys(t) {
		k := keyOf("send_as", user)
		g, ok := t[user].(map[string]any)
		if !ok {
			d.fail(k, "expected a table with addresses and domains, got %s", describe(t[user]))
			continue
		}
		d.unknown(g, []string{"send_as", user}, "addresses", "domains")
		var s SendAs
		d.strs(g, "addresses", k+".addresses", &s.Addresses)
		for i, a := range s.Addresses {
			s.Addresses[i] = normAddress(a)
		}
		d.strs(g, "domains", k+".domains", &s.Domains)
		for i, dom := range s.Domains {
			s.Domains[i] = lower(dom)
		}
		u := normAddress(user)
		if prev, dup := seen[u]; dup {
			d.fail(k, "the same user as %q (domains are compared without case)", prev)
			continue
		}
		seen[u] = user
		out[u] = s
	}
}
