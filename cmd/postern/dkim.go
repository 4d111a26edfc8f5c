package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	"postern/internal/addrkey"
	"postern/internal/dns"
	"postern/internal/mailauth"
)

// dkimKeygenFlags is `postern dkim keygen`.
func dkimKeygenFlags(c *cli, fs *flag.FlagSet) func([]string) error {
	cf := c.configFlags(fs)
	selector := fs.String("selector", "", "the `SELECTOR` (default pYYYYMM for rsa, pYYYYMMe for ed25519)")
	algorithm := fs.String("algorithm", "rsa", "the key `ALGORITHM`: rsa (2048 bits) or ed25519 (RFC 8463)")
	return func(pos []string) error { return dkimKeygen(cf, pos, selector, algorithm, c.stdout, c.now) }
}

// dkimKeygen runs "postern dkim keygen DOMAIN [--selector S] [--algorithm
// ed25519|rsa] [--config FILE | --data DIR]": it writes a new private key
// to DATA/dkim/DOMAIN/SELECTOR.ALG.pem (0600) and prints the DNS TXT
// record to publish (RFC 6376 §3.6.1).
func dkimKeygen(cf *configFlags, pos []string, selector, algorithm *string, stdout io.Writer, now func() time.Time) error {
	// The domain's key (an A-label, lower case), as signing looks it up.
	domain, err := addrkey.Domain(pos[0])
	if err != nil || !strings.Contains(domain, ".") || strings.HasPrefix(domain, "[") {
		return usageError(fmt.Sprintf("dkim keygen: %q is not a domain name", pos[0]))
	}
	var alg, other mailauth.Algorithm
	switch *algorithm {
	case "rsa":
		alg, other = mailauth.RSASHA256, mailauth.Ed25519SHA256
	case "ed25519":
		alg, other = mailauth.Ed25519SHA256, mailauth.RSASHA256
	default:
		return usageError(fmt.Sprintf("dkim keygen: unknown algorithm %q (want ed25519 or rsa)", *algorithm))
	}
	sel := *selector
	if sel == "" {
		sel = now().UTC().Format("p200601")
		if alg == mailauth.Ed25519SHA256 {
			sel += "e"
		}
	}
	// RFC 6376 §3.1; one label, as it names the key file.
	if !dns.ValidName(sel) || strings.Contains(sel, ".") {
		return usageError(fmt.Sprintf("dkim keygen: %q is not a valid selector", sel))
	}
	cfg, err := cf.load()
	if err != nil {
		return err
	}
	// One selector publishes one key (RFC 6376 §3.6.2.2).
	if _, err := os.Stat(mailauth.KeyPath(cfg.DataDir, domain, sel, other)); err == nil {
		return fmt.Errorf("dkim keygen: selector %s of %s already has a key of the other algorithm", sel, domain)
	}
	path := mailauth.KeyPath(cfg.DataDir, domain, sel, alg)
	key, pemBytes, err := mailauth.GenerateKey(alg)
	if err != nil {
		return err
	}
	rec, err := mailauth.KeyRecord(key)
	if err != nil {
		return err
	}
	// As root, for a server that runs as another user, the key and the
	// directories made for it are given to that user (privs.go).
	owner, err := dataOwner(cfg)
	if err != nil {
		return fmt.Errorf("dkim keygen: %w", err)
	}
	if err := mailauth.WriteKey(path, pemBytes, owner); errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("dkim keygen: %s exists; choose another --selector", path)
	} else if err != nil {
		return fmt.Errorf("dkim keygen: %w", err)
	}
	fmt.Fprintf(stdout, "Wrote %s\n", path)
	if !slices.Contains(cfg.LocalDomains, domain) {
		fmt.Fprintf(stdout, "Note: %s is not one of local_domains.\n", domain)
	}
	fmt.Fprintf(stdout, "Publish this DNS record, then restart postern to sign with the key:\n%s\n", mailauth.ZoneRecord(domain, sel, rec))
	return nil
}
