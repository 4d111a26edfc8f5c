package server

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"postern/internal/config"
	"postern/internal/sasl"
	"postern/internal/smtpd"
)

// converter is one function of options.go, run on a configuration.
type converter struct {
	name string
	run  func(*config.Config, config.Secrets) (any, error)
	// wired names the fields of the result (dotted paths) that the
	// wiring sets (a logger, a store, a clock; each with its reason in
	// wiring), and owned those whose default the package owns because
	// no key sets them. The converter leaves both zero.
	wired, owned []string
	// fixed names the fields the converter sets to a constant of serve
	// that no key sets: the same, and not zero, whatever the
	// configuration.
	fixed []string
	// parsed names the numbers read from a string of the configuration
	// (a port in an address), which TestConvertersKeepZero leaves alone.
	parsed []string
}

// wiring says where each field a converter leaves to the wiring comes
// from.
var wiring = map[string]string{
	"Logger":           "the server's logger",
	"Now":              "the clock (time.Now)",
	"Client":           "newAdmission opens the one Redis client",
	"Check.Roots":      "setupTLS reads tls.ca_file",
	"Check.Now":        "ignored by tlsconf (it uses Now)",
	"AllowBrokenChain": "serve --allow-broken-chain",
	"Keys":             "the PKCS#11 tokens",
	"Store":            "ticketStore: memory, or the client of [redis]",
	"Resolver":         "the DNS client of [dns]",
	"IsLocalDomain":    "the user directory",
	"Rand":             "the DMARC pct= sampling (math/rand)",
	"HTTPClient":       "http.DefaultClient",
	"Owner":            "openUsers: the data directory's owner",
	"RootCAs":          "newRemote reads smarthost.ca_file or delivery.ca_file",
	// Per listener, set by runTLS (tls_tickets).
	"SessionTicketsDisabled": "per listener (tls_tickets), set by runTLS",
	"Install":                "startACME: into the certificates served",
	"Passed":                 "screenOf: the admission store remembers who passed",
	"CacheSize":              "NewResolver: dnsCacheSize (no key)",
	"Dial":                   "a net.Dialer",
	"Dialer":                 "the resolver's dns.Dialer (policy.New)",
	"Roots":                  "newPlanner reads delivery.ca_file",
	"Check":                  "authSetup: the user directory",
	"Secrets":                "authSetup: the user directory",
	"Tokens":                 "authSetup: the token verifier of [oauth]",
	"Users":                  "authSetup: the user directory",
	"ServerCertificate":      "authSetup: the certificate served",
	"MockKey":                "authSetup: random, made at start",
	"After":                  "the clock (time.After)",
	"OnBan":                  "newAdmission: the status page's events",
	"OnAlert":                "newAdmission: the status page's events",
	"Metrics":                "the registry's metrics (metrics.go)",
}

// converters lists every converter of options.go; TestConverters checks
// each, and TestConvertersListed that none is missing.
var converters = []converter{
	{name: "gateOptions", run: of(gateOptions), wired: []string{"Metrics"}},
	{name: "abuseOptions", run: of(abuseOptions), wired: []string{"Logger", "OnBan", "OnAlert", "Metrics"}},
	{name: "limiterOptions", run: of(limiterOptions), wired: []string{"Logger", "Metrics"}},
	{name: "redisOptions", run: ofSecrets(redisOptions), wired: []string{"Client"},
		owned: []string{"DialTimeout", "Timeout", "BanCacheTTL"}},
	{name: "limitsOf", run: of(limitsOf), owned: []string{"MaxCommandLine", "MaxTextLine", "MaxReceived", "TLSHandshakeTimeout"}},
	{name: "dataBudgetOptions", run: of(dataBudgetOptions)},
	{name: "poolOptions", run: of(poolOptions)},
	{name: "smarthostOf", run: ofSecrets(smarthostOf), wired: []string{"RootCAs"}},
	{name: "certsOptions", run: of(certsOptions),
		wired: []string{"Check.Roots", "Check.Now", "AllowBrokenChain", "Logger", "Now", "Keys", "Metrics"}},
	{name: "tlsPolicy", run: of(tlsPolicy), wired: []string{"SessionTicketsDisabled"}},
	{name: "ticketOptions", run: of(ticketOptions), wired: []string{"Store", "Now", "Logger"}, owned: []string{"Keep"}},
	{name: "checkerOptions", run: of(checkerOptions), wired: []string{"Resolver", "IsLocalDomain", "Now", "Rand", "Logger", "Metrics"}},
	{name: "jwtOf", run: of(jwtOf), wired: []string{"Now", "HTTPClient"}, owned: []string{"TTL", "MinRefresh"}},
	{name: "introspectionOf", run: ofSecrets(introspectionOf), wired: []string{"Now", "HTTPClient"},
		owned: []string{"CacheTTL", "NegativeTTL", "MaxCache"}},
	{name: "acmeOptions", run: of(acmeOptions), wired: []string{"HTTPClient", "Install", "Now", "After", "Logger", "Metrics"},
		owned: []string{"RetryFirst", "RetryMax", "ObtainTimeout"}},
	{name: "pkcs11Options", run: of(pkcs11Options), wired: []string{"Logger", "Now", "Metrics"}, owned: []string{"MaxInFlight"}},
	{name: "screenOptions", run: of(func(c *config.Config) *smtpd.Screen { return screenOptions(c.Listeners[0]) }),
		wired: []string{"Resolver", "Passed"}, owned: []string{"DNSBLTimeout"}},
	{name: "dnsConfig", run: of(dnsConfig), wired: []string{"CacheSize", "Now", "Dial"}, owned: []string{"ResolvConf"}},
	{name: "retryPolicy", run: of(retryPolicy), fixed: []string{"Jitter"}},
	{name: "spoolOptions", run: of(spoolOptions), wired: []string{"Logger", "Metrics"}},
	{name: "directoryConfig", run: of(directoryConfig), owned: []string{"Refresh"}},
	{name: "autoconfigOptions", run: of(autoconfigOptions), wired: []string{"Logger", "Metrics"},
		owned: []string{"IMAP.Mechanisms"}, parsed: []string{"Submissions.Port", "Submission.Port"}},
	{name: "plannerOptions", run: func(c *config.Config, _ config.Secrets) (any, error) { return plannerOptions(c) },
		wired: []string{"Resolver", "HTTPClient", "Dialer", "Roots", "Now", "Rand", "Logger", "Metrics"},
		owned: []string{"MTASTSCacheSize", "FetchTimeout", "MaxHosts"}, parsed: []string{"Minimum[*]"}},
	{name: "mechanismsOf", run: of(func(c *config.Config) *sasl.Mechanisms { return mechanismsOf(c, c.Listeners[1]) }),
		wired: []string{"Check", "Secrets", "Tokens", "Users", "Now", "ServerCertificate", "MockKey"}},
	{name: "srsOptions", run: of(srsOptions), wired: []string{"Now"}},
	{name: "usersOptions", run: of(usersOptions), wired: []string{"Now", "Logger", "Owner"},
		owned: []string{"CacheSize", "MaxConcurrentHashes"}},
}

// notFromConfig returns the fields of c's result that do not follow the
// configuration (wired, owned and fixed), checking that each wired one has its
// reason.
func (c converter) notFromConfig(t *testing.T) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, f := range c.wired {
		if wiring[f] == "" {
			t.Errorf("%s: wired field %s has no reason in wiring", c.name, f)
		}
		m[f] = "wired"
	}
	for _, f := range c.owned {
		m[f] = "owned"
	}
	for _, f := range c.fixed {
		m[f] = "fixed"
	}
	return m
}

// of adapts a converter of the configuration alone to the table.
func of[T any](f func(*config.Config) T) func(*config.Config, config.Secrets) (any, error) {
	return func(c *config.Config, _ config.Secrets) (any, error) { return f(c), nil }
}

// ofSecrets adapts a converter of the configuration and its secrets.
func ofSecrets[T any](f func(*config.Config, config.Secrets) T) func(*config.Config, config.Secrets) (any, error) {
	return func(c *config.Config, s config.Secrets) (any, error) { return f(c, s), nil }
}

// TestConverters runs each converter on the default configuration and on
// one where every value differs from its default, and checks that every
// field of the options follows the configuration: set (not zero) and
// different in the second. A field a converter forgets, or sets to a
// constant, fails here, unless it is listed in wired or owned.
func TestConverters(t *testing.T) {
	def, odd := loadDefaults(t), loadDefaults(t)
	unusual(t, odd)
	defSec, oddSec := config.Secrets{}, unusualSecrets()
	for _, c := range converters {
		t.Run(c.name, func(t *testing.T) {
			a, err := c.run(def, defSec)
			if err != nil {
				t.Fatalf("default configuration: %v", err)
			}
			b, err := c.run(odd, oddSec)
			if err != nil {
				t.Fatalf("unusual configuration: %v", err)
			}
			seen, skip := map[string]bool{}, c.notFromConfig(t)
			for _, f := range c.fixed {
				va, vb := field(reflect.ValueOf(a), f), field(reflect.ValueOf(b), f)
				if !va.IsValid() || vb.IsZero() || !reflect.DeepEqual(va.Interface(), vb.Interface()) {
					t.Errorf("fixed field %s: %v and %v, want one constant, not zero", f, va, vb)
				}
			}
			compareFields(t, "", reflect.ValueOf(a), reflect.ValueOf(b), skip, seen)
			for f := range skip {
				if !seen[f] {
					t.Errorf("%s is listed, but is not a field of %T", f, a)
				}
			}
		})
	}
}

// TestConvertersPure runs each converter twice on one configuration: it
// must give the same options (functions aside), and leave the Config as
// it was, so that a reload can run the converters on a new Config and
// compare what they give with what runs.
func TestConvertersPure(t *testing.T) {
	cfg, keep := loadDefaults(t), loadDefaults(t)
	unusual(t, cfg)
	unusual(t, keep)
	keep.Source = cfg.Source // loaded from two files
	if !reflect.DeepEqual(cfg, keep) {
		t.Fatal("two loads differ")
	}
	for _, c := range converters {
		t.Run(c.name, func(t *testing.T) {
			a, err := c.run(cfg, unusualSecrets())
			if err != nil {
				t.Fatal(err)
			}
			b, _ := c.run(cfg, unusualSecrets())
			if !reflect.DeepEqual(noFuncs(reflect.ValueOf(a)), noFuncs(reflect.ValueOf(b))) {
				t.Errorf("two runs differ:\n%+v\n%+v", a, b)
			}
			if !reflect.DeepEqual(cfg, keep) {
				t.Error("the converter changed the Config")
			}
		})
	}
}

// noFuncs returns the exported fields of v, through pointers, without
// its functions (which DeepEqual never finds equal).
func noFuncs(v reflect.Value) any {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return noFuncs(v.Elem())
	case reflect.Struct:
		m := map[string]any{}
		for i := range v.NumField() {
			if f := v.Type().Field(i); f.IsExported() && f.Type.Kind() != reflect.Func {
				m[f.Name] = noFuncs(v.Field(i))
			}
		}
		return m
	}
	return v.Interface()
}

// TestConvertersKeepZero runs each converter on a configuration whose
// every number and duration is 0: 0 is "off" in the configuration and in
// the options alike, so every number of the options must be 0 too. A
// converter that turned 0 into a default, or into a -1 meaning off (as
// main once did in five places), fails here.
func TestConvertersKeepZero(t *testing.T) {
	cfg := loadDefaults(t)
	unusual(t, cfg)
	zero(reflect.ValueOf(cfg).Elem())
	for _, c := range converters {
		t.Run(c.name, func(t *testing.T) {
			o, err := c.run(cfg, unusualSecrets())
			if err != nil {
				t.Fatal(err)
			}
			skip := c.notFromConfig(t)
			var walk func(path string, v reflect.Value)
			walk = func(path string, v reflect.Value) {
				if skip[path] != "" || slices.Contains(c.parsed, path) {
					return
				}
				switch v.Kind() {
				case reflect.Pointer:
					if !v.IsNil() {
						walk(path, v.Elem())
					}
				case reflect.Struct:
					for i := range v.NumField() {
						if f := v.Type().Field(i); f.IsExported() {
							walk(strings.TrimPrefix(path+"."+f.Name, "."), v.Field(i))
						}
					}
				case reflect.Map:
					for _, k := range v.MapKeys() {
						walk(path+"["+k.String()+"]", v.MapIndex(k))
					}
				case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
					reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
					reflect.Float32, reflect.Float64:
					if !v.IsZero() {
						t.Errorf("%s = %v from a configuration of zeros: 0 must pass as 0", path, v.Interface())
					}
				}
			}
			walk("", reflect.ValueOf(o))
		})
	}
}

// field returns the field of v at the dotted path p, through pointers;
// the zero Value when there is none.
func field(v reflect.Value, p string) reflect.Value {
	for _, name := range strings.Split(p, ".") {
		for v.Kind() == reflect.Pointer {
			if v.IsNil() {
				return reflect.Value{}
			}
			v = v.Elem()
		}
		if v.Kind() != reflect.Struct {
			return reflect.Value{}
		}
		v = v.FieldByName(name)
	}
	return v
}

// compareFields walks the options a (from the default configuration) and
// b (from the unusual one) down to their leaves: numbers, strings,
// booleans, slices, maps and functions. Each must differ between a and b
// (functions: be set in b), and be set in b unless it is a boolean.
func compareFields(t *testing.T, path string, a, b reflect.Value, skip map[string]string, seen map[string]bool) {
	t.Helper()
	if skip[path] != "" {
		seen[path] = true
		if (!a.IsZero() || !b.IsZero()) && skip[path] != "fixed" {
			t.Errorf("%s is set by the converter, but listed as %s", path, skip[path])
		}
		return
	}
	switch {
	case b.Kind() == reflect.Pointer && !b.IsNil() && b.Elem().Kind() == reflect.Struct:
		// Options that the default configuration leaves out (nil) are
		// compared with their zero value.
		ae := reflect.Zero(b.Type().Elem())
		if !a.IsNil() {
			ae = a.Elem()
		}
		compareFields(t, path, ae, b.Elem(), skip, seen)
		return
	case a.Kind() == reflect.Struct && !a.Type().ConvertibleTo(reflect.TypeFor[netip.Prefix]()):
		for i := range a.NumField() {
			f := a.Type().Field(i)
			if !f.IsExported() {
				continue
			}
			p := f.Name
			if path != "" {
				p = path + "." + f.Name
			}
			compareFields(t, p, a.Field(i), b.Field(i), skip, seen)
		}
		return
	}
	name := path
	if name == "" {
		name = "the options"
	}
	switch {
	case b.Kind() != reflect.Bool && (b.IsZero() || (b.Kind() == reflect.Slice || b.Kind() == reflect.Map) && b.Len() == 0):
		t.Errorf("%s is zero for a configuration that sets every value: not set from the configuration (or list it in wired or owned)", name)
	case b.Kind() == reflect.Func:
		// Functions cannot be compared; set is all that can be said.
	case reflect.DeepEqual(a.Interface(), b.Interface()):
		t.Errorf("%s = %v whatever the configuration: set from a constant, not from the configuration (or list it in wired or owned)", name, b.Interface())
	}
}

// TestConvertersListed fails when options.go has a converter that the
// table of TestConverters lacks.
func TestConvertersListed(t *testing.T) {
	src, err := os.ReadFile("options.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(src), "\n") {
		name, ok := strings.CutPrefix(line, "func ")
		if !ok {
			continue
		}
		name, _, _ = strings.Cut(name, "(")
		if name == "sendLimits" || name == "sendAsGrants" { // parts of limiterOptions and directoryConfig
			continue
		}
		if !slices.ContainsFunc(converters, func(c converter) bool { return c.name == name }) {
			t.Errorf("converter %s is not in the table of TestConverters", name)
		}
	}
}

// loadDefaults loads a configuration that sets nothing it need not: every
// value is the default.
func loadDefaults(t *testing.T) *config.Config {
	t.Helper()
	p := filepath.Join(t.TempDir(), "postern.toml")
	if err := os.WriteFile(p, []byte("hostname = \"mail.example.org\"\n[tls]\nself_signed = true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// unusual changes every value of cfg that a converter reads: each
// number, duration and boolean by reflection (so that a key added later
// changes too), the strings, lists and maps by hand.
func unusual(t *testing.T, cfg *config.Config) {
	t.Helper()
	n := 0
	bump(reflect.ValueOf(cfg).Elem(), &n)
	cfg.Hostname = "mx.example.net"
	cfg.TLS.SelfSigned = false
	cfg.TLS.CertFile, cfg.TLS.KeyFile = "/etc/postern/mx.pem", "/etc/postern/mx.key"
	cfg.Admission.Trusted = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	cfg.Listeners[0].DNSBL = []config.DNSBL{{Zone: "bl.example.net", Weight: 2}}
	cfg.Listeners[1].Address, cfg.Listeners[2].Address = ":10587", ":10465"
	cfg.Listeners[1].AuthMechanisms = []string{"SCRAM-SHA-256"}
	cfg.Listeners[2].AuthMechanisms = []string{"SCRAM-SHA-256-PLUS"}
	cfg.LocalDomains, cfg.Postmaster = []string{"example.net"}, "hostmaster@example.net"
	cfg.Aliases = map[string][]string{"info@example.net": {"alice@example.net"}}
	cfg.SendAs = map[string]config.SendAs{"alice@example.net": {Domains: []string{"example.org"}}}
	cfg.Autoconfig.IMAPHost = "imap.example.net"
	cfg.Auth.CertificateMap = map[string]string{"sha256:00ff": "bot@example.net"}
	cfg.Auth.RequireClientCertificate = []string{"bot@example.net"}
	for i := range cfg.Listeners {
		cfg.Listeners[i].Allow = []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}
		cfg.Listeners[i].Deny = []netip.Prefix{netip.MustParsePrefix("198.51.100.7/32")}
	}
	cfg.SendLimits.OverLimit = config.OverLimitHold
	cfg.SendLimits.Users = map[string]config.UserSendLimits{"alice@example.net": {MessagesPerHour: 1}}
	cfg.Redis.Address, cfg.Redis.Username, cfg.Redis.KeyPrefix = "redis.example.net:6379", "postern", "mx:"
	cfg.Smarthost.Address, cfg.Smarthost.Username = "relay.example.net:587", "mx"
	cfg.Smarthost.Domains = []string{"example.com"}
	cfg.MailAuth.AuthservID = "auth.example.net"
	cfg.ACME = config.ACME{Enabled: true, DirectoryURL: "https://acme.example.net/dir", Email: "hostmaster@example.net",
		Challenge: config.ChallengeDNS01, DNSHook: "/usr/local/bin/dns-hook", RenewBefore: 20 * 24 * time.Hour,
		Hostnames: []string{"mx.example.net"}}
	cfg.DataDir = "/srv/postern"
	cfg.DNS.Servers = []string{"192.0.2.53:53"}
	cfg.Delivery.TLSMinimum = map[string]string{"*": config.TLSEncrypt}
	cfg.PKCS11.Module, cfg.PKCS11.PINFile = "/usr/lib/softhsm/libsofthsm2.so", "/etc/postern/token.pin"
	cfg.OAuth = config.OAuth{JWKSURL: "https://idp.example.net/jwks", JWKSFile: "/etc/postern/jwks.json",
		IntrospectionURL: "https://idp.example.net/introspect", ClientID: "mx", Issuer: "https://idp.example.net",
		Audience: "mx", UserClaim: "upn", Leeway: time.Minute}
}

// unusualSecrets are secrets for unusual's configuration.
func unusualSecrets() config.Secrets {
	return config.Secrets{AdminToken: "0123456789abcdef-token", RedisPassword: "redis-pw",
		SmarthostPassword: "smarthost-pw", OAuthClientSecret: "oauth-secret"}
}

// zero sets every number and duration under v to 0.
func zero(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				zero(v.Field(i))
			}
		}
	case reflect.Slice:
		for i := range v.Len() {
			zero(v.Index(i))
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			e := reflect.New(v.Type().Elem()).Elem()
			e.Set(v.MapIndex(k))
			zero(e)
			v.SetMapIndex(k, e)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		v.SetZero()
	}
}

// bump changes every number, duration and boolean under v: each number
// by a different amount, each boolean to its opposite.
func bump(v reflect.Value, n *int) {
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				bump(v.Field(i), n)
			}
		}
	case reflect.Slice:
		for i := range v.Len() {
			bump(v.Index(i), n)
		}
	case reflect.Bool:
		v.SetBool(!v.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		*n++
		d := int64(*n)
		if v.Type() == reflect.TypeFor[time.Duration]() {
			d *= int64(time.Second)
		}
		v.SetInt(v.Int() + d)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		*n++
		v.SetUint(v.Uint() + uint64(*n))
	case reflect.Float32, reflect.Float64:
		*n++
		v.SetFloat(v.Float() + float64(*n) + 0.5)
	}
}
