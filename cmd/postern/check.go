package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
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
)

// Statuses of a check result.
const (
	statusOK   = "OK"
	statusWarn = "WARN"
	statusFail = "FAIL"
)

// checkResult is one line of `postern check`.
type checkResult struct {
	Check   string `json:"check"`            // config, data-dir, postmaster, certificate, acme, address, ptr, mx, spf, dkim, dmarc, mta-sts, tls-rpt
	Domain  string `json:"domain,omitempty"` // the local domain or host name checked
	Status  string `json:"status"`           // OK, WARN or FAIL
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"` // what to do, often the record to publish
}

// errCheckFailed is returned by cmdCheck when a check failed (exit 1).
var errCheckFailed = errors.New("check: some checks failed (FAIL lines say what to fix)")

// checker runs the checks of `postern check` and collects the results.
type checker struct {
	cfg  *config.Config
	res  dns.Resolver
	http *http.Client // MTA-STS policies
	now  func() time.Time
	// tokens holds the keys in PKCS#11 tokens; nil: opened by run.
	tokens *pkcs11.Tokens
	leaves []*x509.Certificate // of the certificates served (checkclients.go)
	out    []checkResult
}

func (c *checker) add(status, check, domain, msg, fix string) {
	c.out = append(c.out, checkResult{Check: check, Domain: domain, Status: status, Message: msg, Fix: fix})
}
func (c *checker) ok(check, domain, msg string)        { c.add(statusOK, check, domain, msg, "") }
func (c *checker) warn(check, domain, msg, fix string) { c.add(statusWarn, check, domain, msg, fix) }
func (c *checker) fail(check, domain, msg, fix string) { c.add(statusFail, check, domain, msg, fix) }

// checkFlags is `postern check`.
func checkFlags(c *cli, fs *flag.FlagSet) func([]string) error {
	cf := c.configFlags(fs)
	asJSON := fs.Bool("json", false, "print the results as a JSON array of {check, domain, status, message, fix}")
	return func([]string) error { return cmdCheck(cf, *asJSON, c.stdout) }
}

// cmdCheck runs "postern check [--config FILE | --data DIR] [--json]":
// the configuration, the data directory's owner and modes, the
// certificates, and the DNS of every local domain. It prints one line per check (OK, WARN, FAIL) with what to
// fix, or with --json an array of checkResult; it returns
// errCheckFailed when any check failed.
func cmdCheck(cf *configFlags, asJSON bool, stdout io.Writer) error {
	c := &checker{now: time.Now}
	cfg, err := cf.load()
	var ue usageError
	if errors.As(err, &ue) {
		return err
	}
	if err != nil {
		// One line per problem, as serve prints them; the fix once.
		var lines []string
		for _, l := range strings.Split(err.Error(), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				lines = append(lines, l)
			}
		}
		for i, l := range lines {
			fix := ""
			if i == len(lines)-1 {
				fix = "correct the configuration as each message says (docs/configuration.md)"
			}
			c.fail("config", "", l, fix)
		}
	} else {
		c.cfg = cfg
		res, err := newResolver(cfg)
		if err != nil {
			c.fail("config", "", err.Error(), "set [dns] servers, or make /etc/resolv.conf name a resolver")
		} else {
			c.res = res
			// The policy host is looked up through [dns], as delivery does.
			c.http = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
				DialContext: (&dns.Dialer{Resolver: res}).DialContext, ForceAttemptHTTP2: true}}
			c.run(context.Background())
		}
	}
	if err := c.print(stdout, asJSON); err != nil {
		return err
	}
	for _, r := range c.out {
		if r.Status == statusFail {
			return errCheckFailed
		}
	}
	return nil
}

// run checks c.cfg (already valid) and what it depends on.
func (c *checker) run(ctx context.Context) {
	src := c.cfg.Source
	if src == "" {
		src = "the embedded default"
	}
	c.ok("config", "", src+" is valid")
	if c.tokens == nil {
		c.tokens = newTokens(c.cfg, nil) // pkcs11.go
		defer c.tokens.Close()
	}
	c.checkDataDir()
	c.checkPostmaster(ctx) // postmaster.go
	c.checkCertificates()
	c.checkStart()            // startcheck.go
	c.checkAutoconfigServer() // checkclients.go
	c.checkHost(ctx)
	keys, err := mailauth.LoadKeys(c.cfg.DataDir)
	if err != nil {
		c.fail("dkim", "", err.Error(), "replace or remove the broken key file under "+c.cfg.DataDir+"/dkim")
	}
	keys = append(keys, c.configuredDKIMKeys()...) // files, or keys in tokens (checkpkcs11.go)
	for _, d := range c.cfg.LocalDomains {
		c.checkDomain(ctx, d, keys)
	}
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
func (c *checker) checkCertificates() {
	opts := tlsconf.CheckOptions{Hostnames: []string{c.cfg.Hostname}, Now: c.now(), AllowSelfSigned: c.cfg.TLS.SelfSigned}
	if c.cfg.TLS.CAFile != "" {
		b, err := os.ReadFile(c.cfg.TLS.CAFile)
		if err != nil {
			c.fail("certificate", "", fmt.Sprintf("tls.ca_file: %v", err), "correct tls.ca_file")
			return
		}
		opts.Roots = x509.NewCertPool()
		if !opts.Roots.AppendCertsFromPEM(b) {
			c.fail("certificate", "", fmt.Sprintf("tls.ca_file %s: no PEM certificate", c.cfg.TLS.CAFile), "correct tls.ca_file")
			return
		}
	}
	var certs []*tls.Certificate
	var names []string
	for _, f := range c.cfg.TLSCertificateFiles() {
		if c.cfg.TLS.SelfSigned && !exists(f.CertFile) {
			c.ok("certificate", c.cfg.Hostname, "self-signed (development); postern serve creates it in "+c.cfg.SelfSignedDir())
			continue
		}
		cert, err := c.readCertificate(f) // a key file, or a key in a token (checkpkcs11.go)
		if err != nil {
			c.fail("certificate", "", err.Error(), "correct the file, or the path in [tls]")
			continue
		}
		if cert == nil {
			continue // the token key's failure is reported
		}
		if msg, fix := keyFileExposed(f.KeyFile, c.cfg.DataDir); msg != "" {
			c.fail("certificate", "", msg, fix)
		}
		certs, names = append(certs, cert), append(names, f.CertFile)
	}
	if a := c.cfg.ACME; a.Enabled {
		cf, kf := acme.CertFiles(c.cfg.ACMEDir(), a.Hostnames)
		cert, err := tlsconf.ReadCertificate(cf, kf)
		switch {
		case err == nil:
			certs, names = append(certs, cert), append(names, cf)
		case errors.Is(err, fs.ErrNotExist):
			c.warn("acme", a.Hostnames[0], "no ACME certificate obtained yet", "start postern serve: it obtains one from "+a.DirectoryURL)
		default:
			c.fail("acme", a.Hostnames[0], err.Error(), "remove "+cf+" and "+kf+"; postern serve obtains a new certificate")
		}
		if len(certs) == 0 {
			return
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
		c.fail("certificate", c.cfg.Hostname, fmt.Sprintf("%s: %s", p.Cert, p.Message), p.Fix)
	}
	if len(probs) > 0 {
		return
	}
	for i, cert := range certs {
		leaf := cert.Leaf
		if leaf == nil {
			continue
		}
		left := leaf.NotAfter.Sub(c.now())
		msg := fmt.Sprintf("%s: %s, valid until %s (%d days)", names[i], strings.Join(leaf.DNSNames, ", "),
			leaf.NotAfter.UTC().Format(time.RFC3339), int(left.Hours()/24))
		if left < 14*24*time.Hour {
			c.warn("certificate", c.cfg.Hostname, msg+": expires soon", "renew it (postern serve reloads the files by itself), or use [acme]")
		} else {
			c.ok("certificate", c.cfg.Hostname, msg)
		}
	}
}

func exists(name string) bool {
	_, err := os.Stat(name)
	return err == nil
}

// print writes the results: one line each, with the fix indented below
// a FAIL or WARN; or a JSON array.
func (c *checker) print(w io.Writer, asJSON bool) error {
	if asJSON {
		out := c.out
		if out == nil {
			out = []checkResult{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	var nfail, nwarn int
	for _, r := range c.out {
		what := r.Check
		if r.Domain != "" {
			what += " " + r.Domain
		}
		fmt.Fprintf(w, "%-4s %s: %s\n", r.Status, what, r.Message)
		if r.Fix != "" {
			fmt.Fprintf(w, "     fix: %s\n", strings.ReplaceAll(r.Fix, "\n", "\n     "))
		}
		switch r.Status {
		case statusFail:
			nfail++
		case statusWarn:
			nwarn++
		}
	}
	_, err := fmt.Fprintf(w, "%d checks: %d failed, %d warnings\n", len(c.out), nfail, nwarn)
	return err
}
