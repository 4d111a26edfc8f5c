package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// FieldError is one problem with the configuration. Load and Validate
// return an errors.Join of them.
type FieldError struct {
	// File is the configuration file; "" for a configuration that was
	// not loaded from one.
	File string
	// Key is the key, as a TOML dotted path with 0-based indexes into
	// arrays, e.g. `listener[1].address`; "" when Err names the key
	// itself, as for an unknown key.
	Key string
	// Err is the reason.
	Err error
}

// Error returns "FILE: KEY: REASON", leaving out the parts that are empty.
func (e *FieldError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns Err.
func (e *FieldError) Unwrap() error { return e.Err }

// keyOf returns the dotted TOML spelling of a key, quoting the parts that
// are not bare keys.
func keyOf(parts ...string) string { return toml.Key(parts).String() }

// problems collects FieldErrors.
type problems struct {
	file string
	errs []error
}

func (p *problems) add(key string, err error) {
	p.errs = append(p.errs, &FieldError{File: p.file, Key: key, Err: err})
}

func (p *problems) addf(key, format string, args ...any) {
	p.add(key, fmt.Errorf(format, args...))
}

// Validate checks every value of c and returns an errors.Join of
// *FieldError, one for each problem, or nil. It does not touch the file
// system: certificate files are read when TLS is set up. Names and
// domains must already be lower case (Load lower-cases them).
func (c *Config) Validate() error {
	p := &problems{file: c.Source}
	c.validateTop(p)
	c.validateListeners(p)
	c.validateLimits(p)
	c.validateMaps(p)
	c.validateDelivery(p)
	c.validateAuthExtra(p)
	c.validateACME(p)
	c.validateTLSExtra(p)
	c.validateProxy(p)
	c.validateAdmission(p)
	c.validateAdmin(p)      // adminhttp.go
	c.validateProcess(p)    // process.go
	c.validatePKCS11(p)     // pkcs11.go
	c.validateAutoconfig(p) // autoconfig.go
	c.validateLocalMail(p)  // localmail.go
	c.validateMilters(p)    // milter.go
	return errors.Join(p.errs...)
}

func (c *Config) validateTop(p *problems) {
	if err := checkDNSName(c.Hostname); err != nil {
		p.add("hostname", err)
	}
	if c.DataDir == "" {
		p.addf("data_dir", "must not be empty")
	}
	if len(c.LocalDomains) == 0 {
		p.addf("local_domains", "must name at least one domain")
	}
	for i, d := range c.LocalDomains {
		if err := checkDNSName(d); err != nil {
			p.add(fmt.Sprintf("local_domains[%d]", i), err)
		} else if j := slices.Index(c.LocalDomains, d); j < i {
			p.addf(fmt.Sprintf("local_domains[%d]", i), "%q is listed twice (also local_domains[%d])", d, j)
		}
	}
	if err := checkAddress(c.Postmaster); err != nil {
		p.add("postmaster", err)
	}
	switch c.Log.Level {
	case slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError:
	default:
		p.addf("log.level", "%s is not debug, info, warn or error", c.Log.Level)
	}
	if c.Log.Format != LogText && c.Log.Format != LogJSON {
		p.addf("log.format", "%q is not text or json", c.Log.Format)
	}
	if c.HTTP.Address != "" {
		if err := checkListenAddress(c.HTTP.Address); err != nil {
			p.add("http.address", err)
		}
	}
	if c.TLS.MinVersion != tls.VersionTLS12 && c.TLS.MinVersion != tls.VersionTLS13 {
		p.addf("tls.min_version", "must be TLS 1.2 or 1.3 (%#04x)", c.TLS.MinVersion)
	}
	files := c.TLS.CertFile != "" || c.TLS.KeyFile != ""
	switch {
	case c.TLS.SelfSigned && files:
		p.addf("tls.self_signed", "is true, but cert_file or key_file is set; use one or the other")
	case !c.TLS.SelfSigned && !files && len(c.TLS.Certificates) == 0 && !c.ACME.Enabled: // [acme]: acme.go
		p.addf("tls", "cert_file and key_file are required unless self_signed = true")
	case !files: // self-signed, or [[tls.certificate]] only
	case !c.TLS.SelfSigned && c.TLS.CertFile == "":
		p.addf("tls.cert_file", "is required with key_file")
	case !c.TLS.SelfSigned && c.TLS.KeyFile == "":
		p.addf("tls.key_file", "is required with cert_file")
	}
}

func (c *Config) validateListeners(p *problems) {
	if len(c.Listeners) == 0 {
		p.addf("listener", "at least one listener is needed")
	}
	for i, l := range c.Listeners {
		k := fmt.Sprintf("listener[%d]", i)
		switch l.Role {
		case RoleMX, RoleSubmission, RoleSubmissions:
		case "":
			p.addf(k+".role", "missing; set mx, submission or submissions")
		default:
			p.addf(k+".role", "%q is not mx, submission or submissions", l.Role)
		}
		if l.Name != "" || l.Role != "" {
			if err := checkListenerName(l.Name); err != nil {
				p.add(k+".name", err)
			} else if j := slices.IndexFunc(c.Listeners, func(o Listener) bool { return o.Name == l.Name }); j < i {
				p.addf(k+".name", "%q is already the name of listener[%d]; give each listener its own name", l.Name, j)
			}
		}
		if l.Address == "" {
			p.addf(k+".address", "missing; set host:port")
		} else if err := checkListenAddress(l.Address); err != nil {
			p.add(k+".address", err)
		} else if j := slices.IndexFunc(c.Listeners, func(o Listener) bool { return o.Address == l.Address }); j < i {
			p.addf(k+".address", "%q is already the address of listener[%d]", l.Address, j)
		} else if l.Address == c.HTTP.Address {
			p.addf(k+".address", "%q is already http.address", l.Address)
		}
		switch l.Role {
		case RoleMX:
			if l.AuthMechanisms != nil {
				p.addf(k+".auth_mechanisms", "not allowed on an mx listener (authentication is for submission)")
			}
		case RoleSubmission, RoleSubmissions:
			if len(l.AuthMechanisms) == 0 {
				p.addf(k+".auth_mechanisms", "must name at least one mechanism")
			}
			for j, m := range l.AuthMechanisms {
				mk := fmt.Sprintf("%s.auth_mechanisms[%d]", k, j)
				if !slices.Contains(SASLMechanisms, m) {
					p.addf(mk, "%q is not a supported mechanism (%s)", m, strings.Join(SASLMechanisms, ", "))
				} else if slices.Index(l.AuthMechanisms, m) < j {
					p.addf(mk, "%q is listed twice", m)
				}
			}
		}
	}
}

func (c *Config) validateLimits(p *problems) {
	l := c.Limits
	positive := func(key string, v int64) {
		if v <= 0 {
			p.addf(key, "must be greater than 0, not %d", v)
		}
	}
	positive("limits.max_message_size", l.MaxMessageSize)
	positive("limits.max_recipients", int64(l.MaxRecipients))
	positive("limits.max_errors", int64(l.MaxErrors))
	positive("limits.error_delay_after", int64(l.ErrorDelayAfter))
	positive("limits.max_header_size", l.MaxHeaderSize)
	positive("limits.max_data_in_memory", l.MaxDataInMemory)
	if l.MaxDataInFlight < l.MaxMessageSize {
		p.addf("limits.max_data_in_flight", "must be at least limits.max_message_size (%d), not %d: a message that size could never be taken", l.MaxMessageSize, l.MaxDataInFlight)
	}
	positive("spool.segment_size", c.Spool.SegmentSize)
	for _, d := range []struct {
		key  string
		v    int64
		zero bool
	}{
		{"limits.command_timeout", int64(l.CommandTimeout), false},
		{"limits.data_timeout", int64(l.DataTimeout), false},
		{"limits.data_time_limit", int64(l.DataTimeLimit), false},
		{"limits.auth_fail_delay", int64(l.AuthFailDelay), true},
		{"limits.error_delay", int64(l.ErrorDelay), true},
		{"limits.shutdown_timeout", int64(l.ShutdownTimeout), false},
		{"limits.restart_drain_timeout", int64(l.RestartDrainTimeout), true},
		{"auth.cache_ttl", int64(c.Auth.CacheTTL), true},
	} {
		switch {
		case d.v < 0:
			p.addf(d.key, "must not be negative")
		case d.v == 0 && !d.zero:
			p.addf(d.key, "must be greater than 0")
		}
	}
	a := c.Auth
	if a.Argon2Time < 1 {
		p.addf("auth.argon2_time", "must be at least 1")
	}
	if a.Argon2Threads < 1 {
		p.addf("auth.argon2_threads", "must be at least 1")
	}
	// RFC 9106 §3.1: the memory size is at least 8 KiB per lane.
	if min := 8 * uint32(max(a.Argon2Threads, 1)); a.Argon2MemoryKiB < min {
		p.addf("auth.argon2_memory_kib", "must be at least %d (8 per thread)", min)
	}
}

func (c *Config) validateMaps(p *problems) {
	for _, alias := range sortedKeys(c.Aliases) {
		k := keyOf("aliases", alias)
		c.checkLocalAddress(p, k, alias)
		targets := c.Aliases[alias]
		if len(targets) == 0 {
			p.addf(k, "must name at least one target address")
		}
		for i, t := range targets {
			tk := fmt.Sprintf("%s[%d]", k, i)
			if err := checkAddress(t); err != nil {
				p.add(tk, err)
			} else if t == alias {
				p.addf(tk, "an alias cannot point to itself")
			} else if j := slices.Index(targets, t); j < i {
				p.addf(tk, "%q is listed twice", t)
			}
		}
	}
	for _, user := range sortedKeys(c.SendAs) {
		k := keyOf("send_as", user)
		c.checkLocalAddress(p, k, user)
		g := c.SendAs[user]
		for i, a := range g.Addresses {
			if err := checkAddress(a); err != nil {
				p.add(fmt.Sprintf("%s.addresses[%d]", k, i), err)
			}
		}
		for i, d := range g.Domains {
			if err := checkDNSName(d); err != nil {
				p.add(fmt.Sprintf("%s.domains[%d]", k, i), err)
			}
		}
	}
}

// checkLocalAddress reports, at key k, an address that is not valid or
// whose domain is not one of local_domains.
func (c *Config) checkLocalAddress(p *problems, k, addr string) {
	if err := checkAddress(addr); err != nil {
		p.add(k, err)
	} else if !slices.Contains(c.LocalDomains, domainOf(addr)) {
		p.addf(k, "domain %q is not one of local_domains", domainOf(addr))
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
