package check

// What serve reads and opens at start besides the configuration and the
// certificates, checked by postern check with the same functions serve
// calls, so that check fails wherever serve would refuse to start
// (test/startrefusals_test.go walks them).

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"postern/internal/config"
	"postern/internal/mailauth"
)

// checkStart runs serve's start-time loaders that check does not cover
// elsewhere: the admin token, the SRS secrets, the client CA of
// listeners that ask for certificates, the outbound CA and smarthost
// files, Redis, OAuth, and the DKIM keys named in the configuration.
func (c *Checker) checkStart() {
	const check = "start"
	cfg := c.Config
	failed := false
	fail := func(err error, fix string) {
		failed = true
		c.fail(check, "", err.Error(), fix)
	}
	// The secret files, by serve's reader: each unusable file, by its key.
	sec, err := cfg.ReadSecrets()
	var joined interface{ Unwrap() []error }
	if errors.As(err, &joined) {
		for _, e := range joined.Unwrap() {
			fail(e, secretFix(e))
		}
	} else if err != nil {
		fail(err, secretFix(err))
	}
	if _, err := os.Stat(cfg.SRS.SecretFile); err == nil || cfg.SRS.SecretFile != cfg.DefaultSRSSecretFile() {
		if _, err := cfg.SRSSecrets(); err != nil {
			fix := "write a secret to it (openssl rand -base64 32 > FILE), or remove srs.secret_file: serve then makes DATA/srs.secret"
			if errors.Is(err, fs.ErrPermission) {
				fix = "give the file to the server's user (mode 0600)"
			}
			fail(err, fix)
		}
	}
	ld := c.Loaders
	for _, lc := range cfg.Listeners {
		if ld.ListenerTLS == nil {
			break
		}
		if err := ld.ListenerTLS(lc); err != nil {
			fail(fmt.Errorf("listener %s: %w", lc.Name, err), "correct tls.client_ca_file, or the listener's client_certificates")
		}
	}
	if c.Resolver != nil && ld.Planner != nil {
		if err := ld.Planner(c.Resolver); err != nil {
			fail(err, "correct [delivery]")
		}
	}
	if ld.Remote != nil {
		if err := ld.Remote(sec); err != nil {
			fail(err, "correct [smarthost] or delivery.ca_file")
		}
	}
	if ld.Admission != nil {
		if err := ld.Admission(sec); err != nil {
			fail(err, "correct [redis], or start Redis: serve needs it to answer")
		}
	}
	if ld.Auth != nil {
		if err := ld.Auth(sec); err != nil {
			fail(err, "correct [oauth]")
		}
	}
	for i, dk := range cfg.MailAuth.DKIMKeys {
		if _, err := mailauth.LoadKeyFile(dk.KeyFile); err != nil {
			fail(fmt.Errorf("mail_auth.dkim_key[%d]: %w", i, err), "correct key_file, or make the key: postern dkim keygen")
		}
	}
	if !failed {
		c.ok(check, "", "the files and services serve reads at start load (admin token, SRS secrets, CA files, smarthost, Redis, OAuth, DKIM keys)")
	}
}

// secretFix says how to mend the secret file of err, a *config.FieldError
// of ReadSecrets.
func secretFix(err error) string {
	var fe *config.FieldError
	if errors.As(err, &fe) && fe.Key == "admin.token_file" {
		return "write the token to admin.token_file (openssl rand -hex 32 > FILE), or remove admin.http_address"
	}
	return "put the secret on the first line of the file (docs/configuration.md#secret-files)"
}
