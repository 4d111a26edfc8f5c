// Package config turns Postern's TOML configuration file into a typed,
// validated Config. It is read once, by cmd/postern, and its values are
// passed down to the other packages as plain values by serve's wiring
// (internal/server); no other package imports it but internal/check.
//
// Load reads a file, applies the defaults and validates the result,
// reporting every problem it finds (not only the first), each naming the
// file, the key and the reason. Dev returns the embedded default used when
// no file is given. docs/configuration.md describes every key.
//
// # Defaults and "off"
//
// This package is the one source of the defaults of every key. Load and
// Dev return a Config in which every value is resolved: a key the file
// leaves out holds its default here (the Default constants, and values
// derived from other keys, such as mail_auth.authserv_id from hostname),
// never a zero that some package would read as "its default". The
// packages that use the values have no default of their own for them
// (internal/queue's worker count and retry schedule, and
// internal/spool's segment size, are the last exception; the values
// they get are never 0).
//
// Off has one form, 0 (or "", or an empty list), the same in the file,
// in the Config and in the packages' options: a count, a rate, a delay,
// a cache or a cap of 0 is off ("no limit", "no delay", "keep none").
// A key that cannot be off refuses 0 in Validate (a timeout, a worker
// count, a hash parameter). Its option in the package then reads 0 as
// off too, where that means something (smtpd's limits), or is required:
// the constructor refuses 0, with an error where it returns one and a
// panic where it cannot, as time.NewTicker does.
//
// So internal/server's converters (options.go: one pure function per
// package's options) copy values across and never translate; a package
// keeps defaults only for options no key sets (protocol limits, internal
// timeouts), which have that one owner. The Config is a plain value (no
// pointers to shared state, no secrets): load it again and compare it
// with reflect.DeepEqual, or run the converters on it again, to see what
// a changed file changes.
//
// # Secrets
//
// A secret (a password, a token, a connection string) is never a value
// in the file: a key ending in _file names a file that holds it
// (SecretKeys). Every such file is read here, by ReadSecret, with one
// rule: the secret is the file's first line, without its line end and
// the blanks around it; an empty first line is an error. ReadSecrets
// reads those serve uses, at start, into Secrets, which is kept apart
// from the Config (printed, logged, compared) and prints no secret.
package config

import (
	"crypto/tls"
	"log/slog"
	"path/filepath"
	"time"
)

// Role is what a listener is for.
type Role string

// The listener roles.
const (
	// RoleMX takes mail from other servers for the local domains, on
	// port 25 (RFC 5321), with STARTTLS offered but not required.
	RoleMX Role = "mx"
	// RoleSubmission takes mail from users' clients on port 587
	// (RFC 6409), after STARTTLS (RFC 3207) and authentication.
	RoleSubmission Role = "submission"
	// RoleSubmissions takes mail from users' clients on port 465 with
	// implicit TLS (RFC 8314), after authentication.
	RoleSubmissions Role = "submissions"
)

// Log formats.
const (
	// LogText selects slog's text handler (key=value pairs).
	LogText = "text"
	// LogJSON selects slog's JSON handler.
	LogJSON = "json"
)

// Default values, shared by Load and Dev.
const (
	// DefaultDataDir is data_dir when the file does not set it.
	DefaultDataDir = "/var/lib/postern"
	// DevDataDir is data_dir of the embedded default when Dev gets "".
	DevDataDir = "./postern-data"
	// DefaultHTTPAddress is http.address when the file does not set it.
	DefaultHTTPAddress = "127.0.0.1:2580"
	// DefaultMaxMessageSize is limits.max_message_size (35 MiB).
	DefaultMaxMessageSize = 35 << 20
	// DefaultMaxRecipients is limits.max_recipients (RFC 5321 §4.5.3.1.8).
	DefaultMaxRecipients = 100
	// DefaultMaxErrors is limits.max_errors (Postfix's
	// smtpd_hard_error_limit).
	DefaultMaxErrors = 20
	// DefaultErrorDelayAfter is limits.error_delay_after (Postfix's
	// smtpd_soft_error_limit).
	DefaultErrorDelayAfter = 10
	// DefaultErrorDelay is limits.error_delay (Postfix's
	// smtpd_error_sleep_time).
	DefaultErrorDelay = time.Second
	// DefaultCommandTimeout is limits.command_timeout (RFC 5321 §4.5.3.2.7).
	DefaultCommandTimeout = 5 * time.Minute
	// DefaultDataTimeout is limits.data_timeout (RFC 5321 §4.5.3.2.5 asks
	// clients to wait 3 minutes per data block).
	DefaultDataTimeout = 3 * time.Minute
	// DefaultDataTimeLimit is limits.data_time_limit: the whole of DATA,
	// whatever the client's pace.
	DefaultDataTimeLimit = 10 * time.Minute
	// DefaultMaxHeaderSize is limits.max_header_size (256 KiB, as
	// Exchange Online's limit on a header section).
	DefaultMaxHeaderSize = 256 << 10
	// DefaultMaxDataInFlight is limits.max_data_in_flight (1 GiB).
	DefaultMaxDataInFlight = 1 << 30
	// DefaultMaxDataInMemory is limits.max_data_in_memory (64 MiB).
	DefaultMaxDataInMemory = 64 << 20
	// DefaultAuthFailDelay is limits.auth_fail_delay.
	DefaultAuthFailDelay = time.Second
	// DefaultShutdownTimeout is limits.shutdown_timeout.
	DefaultShutdownTimeout = 30 * time.Second
	// DefaultRestartDrainTimeout is limits.restart_drain_timeout.
	DefaultRestartDrainTimeout = 10 * time.Second
	// DefaultCacheTTL is auth.cache_ttl.
	DefaultCacheTTL = 5 * time.Minute
	// DefaultArgon2Time, DefaultArgon2MemoryKiB and DefaultArgon2Threads
	// are the Argon2id parameters of new password hashes: t=2, m=64 MiB,
	// p=1. RFC 9106 §4 recommends t=1, m=2 GiB, or t=3, m=64 MiB where
	// memory is scarce; OWASP's Password Storage Cheat Sheet asks for at
	// least m=19 MiB, t=2, p=1. This sits between them: over three times
	// OWASP's memory, two thirds of RFC 9106's second option's passes,
	// and one lane because a mail server hashes many logins in parallel
	// rather than one quickly. Each hash in flight holds the memory,
	// which is why userdb bounds the hashes in flight.
	//
	// DefaultArgon2Time is auth.argon2_time (passes).
	DefaultArgon2Time = 2
	// DefaultArgon2MemoryKiB is auth.argon2_memory_kib (64 MiB).
	DefaultArgon2MemoryKiB = 64 * 1024
	// DefaultArgon2Threads is auth.argon2_threads.
	DefaultArgon2Threads = 1
	// DefaultSegmentSize is spool.segment_size (64 MiB).
	DefaultSegmentSize = 64 << 20
)

// DefaultAuthMechanisms returns the SASL mechanisms a submission listener
// offers when auth_mechanisms is not set, in order of preference.
func DefaultAuthMechanisms() []string { return []string{"PLAIN", "LOGIN"} }

// Config is Postern's whole configuration, with defaults applied. Load
// returns it validated, with domains lower-cased and relative paths
// resolved against the directory of the configuration file.
type Config struct {
	// Source is the file the configuration was loaded from, as given to
	// Load; "" for the embedded default (Dev). Validate prefixes its
	// errors with it.
	Source string
	// Hostname is the server's own DNS name (lower case): the EHLO and
	// greeting name, the name in Received headers and in the
	// self-signed certificate.
	Hostname string
	// DataDir holds the users file, the spool, the mailboxes and the
	// self-signed certificate.
	DataDir string
	// LocalDomains are the domains mail is delivered to here: lower
	// case, unique, in the file's order. Port 25 accepts mail only for
	// addresses in these domains.
	LocalDomains []string
	// Postmaster is the address that receives mail for postmaster@ of
	// every local domain and the reports Postern sends.
	Postmaster string
	// Log selects the log level and format.
	Log Log
	// HTTP is the metrics and health endpoint.
	HTTP HTTP
	// TLS selects the certificate and the TLS policy of all listeners.
	TLS TLS
	// Listeners are the SMTP listeners, in the file's order.
	Listeners []Listener
	// Limits bound what a client may do.
	Limits Limits
	// Auth tunes password checking.
	Auth Auth
	// Spool tunes the durable message spool.
	Spool Spool
	// Aliases maps an alias address (in a local domain, domain part
	// lower case) to the addresses its mail goes to.
	Aliases map[string][]string
	// SendAs maps a user's address (in a local domain) to what else the
	// user may use as envelope sender and in From:.
	SendAs map[string]SendAs
	// DNS is the resolver for delivery and mail authentication.
	DNS DNS
	// Delivery tunes the queue runner and outbound SMTP.
	Delivery Delivery
	// Smarthost, when its Address is set, relays outbound mail.
	Smarthost Smarthost
	// LMTP, when its Address is set, replaces Maildir local delivery.
	LMTP LMTP
	// MailAuth selects SPF/DKIM/DMARC checks and DKIM signing.
	MailAuth MailAuth
	// Directory selects where users live.
	Directory Directory
	// ACME, when Enabled, obtains and renews the certificate (acme.go).
	ACME ACME
	// Check is what `postern check` compares the DNS with.
	Check Check
	// OAuth checks the access tokens of OAUTHBEARER and XOAUTH2.
	OAuth OAuth
	// Proxy names the load balancers trusted with PROXY headers (proxy.go).
	Proxy Proxy
	// AdmissionTables holds [admission], [abuse], [send_limits] and [redis] (admission.go).
	AdmissionTables
	// Admin is the admin socket's group and the admin API over HTTP (adminhttp.go).
	Admin Admin
	// Process is the user and group Postern serves as (process.go).
	Process Process
	// PKCS11 is where keys named by pkcs11: URIs live (pkcs11.go).
	PKCS11 PKCS11
	// Autoconfig serves mail clients their settings (autoconfig.go).
	Autoconfig Autoconfig
	// Sendmail and SRS are [sendmail] and [srs] (localmail.go).
	Sendmail Sendmail
	SRS      SRS
	// Milters are the [[milter]] tables, in the file's order (milter.go).
	Milters []Milter
}

// applyDerived fills the defaults that depend on other keys.
func (c *Config) applyDerived() {
	if c.MailAuth.AuthservID == "" {
		c.MailAuth.AuthservID = c.Hostname
	}
	c.deriveAutoconfigNames() // autoconfig.go
	c.deriveOAuth()           // authx.go
	c.deriveLocalMail()       // localmail.go
}

// setNewDefaults gives the delivery, DNS, mail-authentication and
// directory tables their defaults.
func (c *Config) setNewDefaults() {
	c.DNS = DNS{Timeout: DefaultDNSTimeout}
	c.Delivery = defaultDelivery()
	c.MailAuth = defaultMailAuth()
	c.Auth.SCRAMIterations = DefaultSCRAMIterations
	c.Directory = Directory{Backend: DirectoryFile}
	c.AdmissionTables = defaultAdmissionTables()
	c.Admin = defaultAdmin()
	c.TLS.TicketRotation = DefaultTicketRotation
	c.OAuth.Leeway = DefaultOAuthLeeway
	c.PKCS11.Timeout = DefaultPKCS11Timeout
	c.SRS.MaxAgeDays = DefaultSRSMaxAgeDays
}

// Log is the [log] table.
type Log struct {
	// Level is the least severe level logged.
	Level slog.Level
	// Format is LogText or LogJSON.
	Format string
	// Trace lists the clients whose whole SMTP dialogue is logged: IP
	// addresses, prefixes and user names (smtpd.ParseTraceList parses
	// them, at start and on reload).
	Trace []string
}

// HTTP is the [http] table.
type HTTP struct {
	// Address is host:port for /metrics and /healthz; "" disables the
	// endpoint.
	Address string
	// Pprof adds Go's profiling handlers (/debug/pprof/) to the endpoint:
	// CPU, heap, goroutine and execution-trace profiles of the live
	// server, for performance work. Off by default; the endpoint has no
	// authentication.
	Pprof bool
}

// TLS is the [tls] table.
type TLS struct {
	// ClientCAFile holds the CA certificates that client certificates
	// must chain to (listeners with client_certificates set).
	ClientCAFile string
	// CertFile is the PEM certificate chain, leaf first; "" when
	// SelfSigned.
	CertFile string
	// KeyFile is the PEM private key of the leaf; "" when SelfSigned.
	KeyFile string
	// SelfSigned makes Postern create (once) and use a self-signed
	// certificate for Hostname under SelfSignedDir.
	SelfSigned bool
	// MinVersion is tls.VersionTLS12 or tls.VersionTLS13.
	MinVersion uint16
	// TLSExtra holds [[tls.certificate]], ca_file and ticket_rotation.
	TLSExtra
}

// Listener is one [[listener]] table.
type Listener struct {
	// Name identifies the listener in logs, metrics and
	// smtp.Envelope.Listener; unique.
	Name string
	// Role is what the listener is for.
	Role Role
	// Address is host:port to listen on; the host may be empty (all
	// addresses), an IP address or a DNS name.
	Address string
	// AuthMechanisms are the SASL mechanisms offered, upper case, in
	// order of preference; nil for RoleMX.
	AuthMechanisms []string
	// ClientCertificates is "none", "request" or "require": whether the
	// listener asks TLS clients for a certificate (verified against
	// tls.client_ca_file), for SASL EXTERNAL.
	ClientCertificates string
	// ListenerTLS holds tls_tickets.
	ListenerTLS
	// ListenerScreen holds proxy_protocol, greet_delay and dnsbl (proxy.go).
	ListenerScreen
	// ListenerAdmission holds allow and deny (admission.go).
	ListenerAdmission
}

// Limits is the [limits] table.
type Limits struct {
	// MaxMessageSize is the largest message accepted, in bytes
	// (advertised with SIZE, RFC 1870).
	MaxMessageSize int64
	// MaxRecipients is the most RCPT TO accepted per message.
	MaxRecipients int
	// MaxErrors is how many failed commands end a session.
	MaxErrors int
	// ErrorDelayAfter is how many failed commands a session may make
	// before every reply waits ErrorDelay.
	ErrorDelayAfter int
	// ErrorDelay is that wait; 0 means none.
	ErrorDelay time.Duration
	// CommandTimeout is how long the server waits for a command.
	CommandTimeout time.Duration
	// DataTimeout is how long the server waits for each read during DATA.
	DataTimeout time.Duration
	// DataTimeLimit bounds the whole of DATA, from 354 to the final dot.
	DataTimeLimit time.Duration
	// MaxHeaderSize bounds a message's header section, kept in memory.
	MaxHeaderSize int64
	// MaxDataInFlight bounds the message data all sessions hold at once
	// between DATA and the spool's answer, in memory and on disk.
	MaxDataInFlight int64
	// MaxDataInMemory bounds the part of it held in memory.
	MaxDataInMemory int64
	// AuthFailDelay is the pause before answering a failed AUTH.
	AuthFailDelay time.Duration
	// ShutdownTimeout is how long a shutdown waits for sessions to end.
	ShutdownTimeout time.Duration
	// RestartDrainTimeout is how long, in a graceful restart, the old
	// process lets its sessions go on as usual before it shuts them down
	// as at ShutdownTimeout; 0 shuts them down at once.
	RestartDrainTimeout time.Duration
}

// Auth is the [auth] table.
type Auth struct {
	// CacheTTL is how long a verified credential is remembered; 0
	// disables the cache.
	CacheTTL time.Duration
	// Argon2Time is the Argon2id time parameter (passes) for new hashes.
	Argon2Time uint32
	// Argon2MemoryKiB is the Argon2id memory parameter, in KiB.
	Argon2MemoryKiB uint32
	// Argon2Threads is the Argon2id parallelism parameter.
	Argon2Threads uint8
	// SCRAMIterations is the PBKDF2 iteration count of new SCRAM
	// credentials (RFC 7677 §4: at least 4096).
	SCRAMIterations int
	// RequireClientCertificate lists users who must also present a
	// verified client certificate naming them, whatever the mechanism.
	RequireClientCertificate []string
	// CertificateMap maps a client certificate ("sha256:HEX" fingerprint
	// or SAN email) to the user it authenticates as, for EXTERNAL.
	CertificateMap map[string]string
}

// Spool is the [spool] table.
type Spool struct {
	// SegmentSize is the size, in bytes, at which the spool starts a new
	// segment file.
	SegmentSize int64
}

// SendAs is one [send_as."user"] table: what a user may send as besides
// their own address.
type SendAs struct {
	// Addresses are further addresses the user may send as (domain part
	// lower case).
	Addresses []string
	// Domains are domains (lower case) at which the user may send as any
	// address.
	Domains []string
}

// Dev returns the embedded default configuration, used when Postern runs
// without a configuration file: host name and only local domain
// "localhost", a self-signed certificate, and listeners on 127.0.0.1
// ports 2525 (mx), 2587 (submission) and 2465 (submissions). dataDir ""
// means DevDataDir.
func Dev(dataDir string) *Config {
	if dataDir == "" {
		dataDir = DevDataDir
	}
	c := &Config{
		Hostname:     "localhost",
		DataDir:      dataDir,
		LocalDomains: []string{"localhost"},
		Postmaster:   "postmaster@localhost",
		Log:          Log{Level: slog.LevelInfo, Format: LogText},
		HTTP:         HTTP{Address: DefaultHTTPAddress},
		TLS:          TLS{SelfSigned: true, MinVersion: tls.VersionTLS12},
		Listeners: withListenerDefaults([]Listener{
			{Name: "mx", Role: RoleMX, Address: "127.0.0.1:2525"},
			{Name: "submission", Role: RoleSubmission, Address: "127.0.0.1:2587", AuthMechanisms: DefaultAuthMechanisms()},
			{Name: "submissions", Role: RoleSubmissions, Address: "127.0.0.1:2465", AuthMechanisms: DefaultAuthMechanisms()},
		}),
		Aliases: map[string][]string{},
		SendAs:  map[string]SendAs{},
	}
	c.Limits = defaultLimits()
	c.Auth = defaultAuth()
	c.Spool = Spool{SegmentSize: DefaultSegmentSize}
	c.setNewDefaults()
	// The embedded default serves localhost only: no SPF, DKIM or DMARC
	// lookups for mail that never crossed a network.
	c.MailAuth.Check = false
	c.applyDerived()
	return c
}

// DataShares returns the share of MaxDataInFlight that clients that did
// not log in may hold from one address (an IPv6 /64) and from one
// network (an IPv4 /24, an IPv6 /48): a sixteenth and a quarter of it,
// and never less than one message of MaxMessageSize.
func (l Limits) DataShares() (perAddress, perNetwork int64) {
	return max(l.MaxDataInFlight/16, l.MaxMessageSize), max(l.MaxDataInFlight/4, l.MaxMessageSize)
}

func defaultLimits() Limits {
	return Limits{
		MaxMessageSize:      DefaultMaxMessageSize,
		MaxRecipients:       DefaultMaxRecipients,
		MaxErrors:           DefaultMaxErrors,
		ErrorDelayAfter:     DefaultErrorDelayAfter,
		ErrorDelay:          DefaultErrorDelay,
		CommandTimeout:      DefaultCommandTimeout,
		DataTimeout:         DefaultDataTimeout,
		DataTimeLimit:       DefaultDataTimeLimit,
		MaxHeaderSize:       DefaultMaxHeaderSize,
		MaxDataInFlight:     DefaultMaxDataInFlight,
		MaxDataInMemory:     DefaultMaxDataInMemory,
		AuthFailDelay:       DefaultAuthFailDelay,
		ShutdownTimeout:     DefaultShutdownTimeout,
		RestartDrainTimeout: DefaultRestartDrainTimeout,
	}
}

func defaultAuth() Auth {
	return Auth{
		CacheTTL:        DefaultCacheTTL,
		Argon2Time:      DefaultArgon2Time,
		Argon2MemoryKiB: DefaultArgon2MemoryKiB,
		Argon2Threads:   DefaultArgon2Threads,
	}
}

// defaultListeners are the production listeners when the file has no
// [[listener]] table.
func defaultListeners() []Listener {
	return withListenerDefaults([]Listener{
		{Name: "mx", Role: RoleMX, Address: ":25"},
		{Name: "submission", Role: RoleSubmission, Address: ":587", AuthMechanisms: DefaultAuthMechanisms()},
		{Name: "submissions", Role: RoleSubmissions, Address: ":465", AuthMechanisms: DefaultAuthMechanisms()},
	})
}

// withListenerDefaults gives the listeners of the embedded defaults the
// default values of the keys they leave out.
func withListenerDefaults(ls []Listener) []Listener {
	for i := range ls {
		ls[i].DNSBLThreshold = DefaultDNSBLThreshold
	}
	return ls
}

// SelfSignedDir is the directory that holds the self-signed certificate
// and key: DataDir/tls.
func (c *Config) SelfSignedDir() string { return filepath.Join(c.DataDir, "tls") }

// TLSFiles returns the certificate and key files to serve: CertFile and
// KeyFile, or with SelfSigned the files under SelfSignedDir
// (cert.pem, key.pem), which tlsconf.EnsureSelfSigned creates.
func (c *Config) TLSFiles() (cert, key string) {
	if c.TLS.SelfSigned {
		d := c.SelfSignedDir()
		return filepath.Join(d, "cert.pem"), filepath.Join(d, "key.pem")
	}
	return c.TLS.CertFile, c.TLS.KeyFile
}

// UsersFile is the embedded user directory: DataDir/users.json.
func (c *Config) UsersFile() string { return filepath.Join(c.DataDir, "users.json") }

// SpoolDir is the durable message spool: DataDir/queue.
func (c *Config) SpoolDir() string { return filepath.Join(c.DataDir, "queue") }

// MailDir is the root of the local mailboxes: DataDir/mail.
func (c *Config) MailDir() string { return filepath.Join(c.DataDir, "mail") }

// AdminSocket returns the path of the admin API's unix socket,
// data_dir/admin.sock: the server listens there, and postern queue, ban,
// reload and sendmail talk to it.
func (c *Config) AdminSocket() string { return filepath.Join(c.DataDir, "admin.sock") }

// IsLocalDomain reports whether domain (any case) is one of LocalDomains.
func (c *Config) IsLocalDomain(domain string) bool {
	d := lower(domain)
	for _, l := range c.LocalDomains {
		if l == d {
			return true
		}
	}
	return false
}
