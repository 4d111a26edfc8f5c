// Package check implements the checks of postern check: the
// configuration's files, the data directory's owner and modes, the
// certificates, the loaders serve runs at start, and the DNS of every
// local domain (MX, SPF, DKIM, DMARC, MTA-STS, TLS-RPT, the client SRV
// and autoconfig names), each judged by the same parsers delivery and
// serve use, so that check never blesses what they refuse. Each result
// says what to fix. It also words serve's start failures (hints.go).
package check

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"postern/internal/acme"
	"postern/internal/config"
	"postern/internal/dns"
	"postern/internal/mailauth"
	"postern/internal/pkcs11"
	"postern/internal/tlsconf"
	"postern/internal/userdb"
)

// Statuses of a Result.
const (
	StatusOK   = "OK"
	StatusWarn = "WARN"
	StatusFail = "FAIL"
)

// Result is one line of postern check.
type Result struct {
	Check   string `json:"check"`            // config, data-dir, postmaster, certificate, acme, address, ptr, mx, spf, dkim, dmarc, mta-sts, tls-rpt
	Domain  string `json:"domain,omitempty"` // the local domain or host name checked
	Status  string `json:"status"`           // StatusOK, StatusWarn or StatusFail
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"` // what to do, often the record to publish
}

// Failed reports whether a result in rs is a FAIL.
func Failed(rs []Result) bool {
	for _, r := range rs {
		if r.Status == StatusFail {
			return true
		}
	}
	return false
}

// Loaders are the functions serve runs at start to build its parts,
// given by the command that wires serve, so that check fails wherever
// serve would refuse to start (test/startrefusals_test.go walks them).
// A nil loader is not run.
type Loaders struct {
	// OpenUsers opens the user directory the configuration names or,
	// with a file, an empty users file there (for a data directory
	// without users yet; check leaves the data directory as it is).
	OpenUsers func(file string) (*userdb.DB, error)
	// Directory is the configuration of the user Directory (aliases,
	// send_as, postmaster).
	Directory userdb.DirectoryConfig
	// ListenerTLS builds the TLS configuration of a listener (its client CA).
	ListenerTLS func(config.Listener) error
	// Planner builds the delivery policy engine.
	Planner func(dns.Resolver) error
	// Remote opens outbound delivery (smarthost, delivery.ca_file) and closes it.
	Remote func(config.Secrets) error
	// Admission opens the admission gate (Redis) and closes it.
	Admission func(config.Secrets) error
	// Auth builds the authentication setup (OAuth).
	Auth func(config.Secrets) error
}

// Checker runs the checks of postern check and collects the results.
// Config, Resolver and HTTP are required; a Checker runs once.
type Checker struct {
	Config   *config.Config
	Resolver dns.Resolver
	HTTP     *http.Client     // fetches MTA-STS policies
	Now      func() time.Time // nil: time.Now
	// Tokens holds the keys in PKCS#11 tokens; the caller closes it.
	// Nil: none, and a key URI fails.
	Tokens  *pkcs11.Tokens
	Loaders Loaders

	leaves []*x509.Certificate // of the certificates served (clients.go)
	out    []Result
}

func (c *Checker) add(status, check, domain, msg, fix string) {
	c.out = append(c.out, Result{Check: check, Domain: domain, Status: status, Message: msg, Fix: fix})
}
func (c *Checker) ok(check, domain, msg string)        { c.add(StatusOK, check, domain, msg, "") }
func (c *Checker) warn(check, domain, msg, fix string) { c.add(StatusWarn, check, domain, msg, fix) }
func (c *Checker) fail(check, domain, msg, fix string) { c.add(StatusFail, check, domain, msg, fix) }

// Run checks c.Config (already valid) and what it depends on, and
// returns the results, one for each line of postern check.
func (c *Checker) Run(ctx context.Context) []Result {
	src := c.Config.Source
	if src == "" {
		src = "the embedded default"
	}
	c.ok("config", "", src+" is valid")
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Tokens == nil {
		c.Tokens = pkcs11.New(pkcs11.Options{}) // no token: a key URI fails, saying so
		defer c.Tokens.Close()
	}
	c.checkDataDir()
	c.checkPostmaster(ctx) // postmaster.go
	c.checkCertificates()
	c.checkStart()            // start.go
	c.checkAutoconfigServer() // clients.go
	c.checkHost(ctx)
	keys, err := mailauth.LoadKeys(c.Config.DataDir)
	if err != nil {
		c.fail("dkim", "", err.Error(), "replace or remove the broken key file under "+c.Config.DataDir+"/dkim")
	}
	keys = append(keys, c.configuredDKIMKeys()...) // files, or keys in tokens (pkcs11.go)
	for _, d := range c.Config.LocalDomains {
		c.checkDomain(ctx, d, keys)
	}
	return c.out
}

// keyFileExposed says what is wrong, and how to fix it, when the private
// key at path is readable by everyone. Keys under dataDir are left to the
// data-dir check, which looks at every file there; a key kept elsewhere
// (/etc/postern, /etc/ssl/private) is checked here. Readable by the group
// is fine: 0640 with the group the server runs as is the usual way to
// share a key with it.
func keyFileExposed(path, dataDir string) (msg, fix string) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", ""
	}
	if d, err := filepath.Abs(dataDir); err == nil && strings.HasPrefix(abs, d+string(filepath.Separator)) {
		return "", ""
	}
	fi, err := os.Stat(abs)
	if err != nil || fi.Mode().Perm()&0o004 == 0 {
		return "", ""
	}
	return fmt.Sprintf("%s: the private key is readable by everyone (mode %04o)", path, fi.Mode().Perm()),
		"chmod o-rwx " + path + " (0600 for the server's user, or 0640 with the server's group)"
}

// checkCertificates checks the certificates the server would serve, as
// a client would (tlsconf.CheckSet), and the stored ACME certificate.
func (c *Checker) checkCertificates() {
	opts := tlsconf.CheckOptions{Hostnames: []string{c.Config.Hostname}, Now: c.Now(), AllowSelfSigned: c.Config.TLS.SelfSigned}
	if c.Config.TLS.CAFile != "" {
		roots, err := tlsconf.LoadPool(c.Config.TLS.CAFile, "tls.ca_file", false) // as serve reads it
		if err != nil {
			c.fail("certificate", "", err.Error(), "correct tls.ca_file")
			return
		}
		opts.Roots = roots
	}
	certs, names := c.fileCertificates()
	if a := c.Config.ACME; a.Enabled {
		cf, kf := acme.CertFiles(c.Config.ACMEDir(), a.Hostnames)
		cert, err := tlsconf.ReadCertificate(cf, kf)
		switch {
		case err == nil:
			certs, names = append(certs, cert), append(names, cf)
		case errors.Is(err, fs.ErrNotExist):
			c.warn("acme", a.Hostnames[0], "no ACME certificate obtained yet", "start postern serve: it obtains one from "+a.DirectoryURL)
		default:
			c.fail("acme", a.Hostnames[0], err.Error(), "remove "+cf+" and "+kf+"; postern serve obtains a new certificate")
		}
	}
	if len(certs) == 0 {
		return
	}
	for _, cert := range certs {
		if cert.Leaf != nil {
			c.leaves = append(c.leaves, cert.Leaf)
		}
	}
	probs := tlsconf.CheckSet(certs, names, opts)
	for _, p := range probs {
		c.fail("certificate", c.Config.Hostname, fmt.Sprintf("%s: %s", p.Cert, p.Message), p.Fix)
	}
	if len(probs) == 0 {
		c.checkExpiry(certs, names)
	}
}

// fileCertificates reads the certificates of [tls] (a key file, or a key
// in a token) and returns those that load, with their file names. The
// self-signed certificate serve has not made yet is OK; a private key
// file readable by everyone is a FAIL.
func (c *Checker) fileCertificates() (certs []*tls.Certificate, names []string) {
	for _, f := range c.Config.TLSCertificateFiles() {
		if c.Config.TLS.SelfSigned && !exists(f.CertFile) {
			c.ok("certificate", c.Config.Hostname, "self-signed (development); postern serve creates it in "+c.Config.SelfSignedDir())
			continue
		}
		cert, err := c.readCertificate(f) // a key file, or a key in a token (pkcs11.go)
		if err != nil {
			c.fail("certificate", "", err.Error(), "correct the file, or the path in [tls]")
			continue
		}
		if cert == nil {
			continue // the token key's failure is reported
		}
		if msg, fix := keyFileExposed(f.KeyFile, c.Config.DataDir); msg != "" {
			c.fail("certificate", "", msg, fix)
		}
		certs, names = append(certs, cert), append(names, f.CertFile)
	}
	return certs, names
}

// checkExpiry reports each certificate's names and end of validity: a
// WARN within 14 days of it.
func (c *Checker) checkExpiry(certs []*tls.Certificate, names []string) {
	for i, cert := range certs {
		leaf := cert.Leaf
		if leaf == nil {
			continue
		}
		left := leaf.NotAfter.Sub(c.Now())
		msg := fmt.Sprintf("%s: %s, valid until %s (%d days)", names[i], strings.Join(leaf.DNSNames, ", "),
			leaf.NotAfter.UTC().Format(time.RFC3339), int(left.Hours()/24))
		if left < 14*24*time.Hour {
			c.warn("certificate", c.Config.Hostname, msg+": expires soon", "renew it (postern serve reloads the files by itself), or use [acme]")
		} else {
			c.ok("certificate", c.Config.Hostname, msg)
		}
	}
}

func exists(name string) bool {
	_, err := os.Stat(name)
	return err == nil
}

// Print writes the results: one line each, with the fix indented below
// a FAIL or WARN, and a count; or with asJSON a JSON array of Result.
func Print(w io.Writer, out []Result, asJSON bool) error {
	if asJSON {
		if out == nil {
			out = []Result{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	var nfail, nwarn int
	for _, r := range out {
		what := r.Check
		if r.Domain != "" {
			what += " " + r.Domain
		}
		fmt.Fprintf(w, "%-4s %s: %s\n", r.Status, what, r.Message)
		if r.Fix != "" {
			fmt.Fprintf(w, "     fix: %s\n", strings.ReplaceAll(r.Fix, "\n", "\n     "))
		}
		switch r.Status {
		case StatusFail:
			nfail++
		case StatusWarn:
			nwarn++
		}
	}
	_, err := fmt.Fprintf(w, "%d checks: %d failed, %d warnings\n", len(out), nfail, nwarn)
	return err
}
