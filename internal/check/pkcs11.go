package check

import (
	"crypto"
	"crypto/tls"
	"errors"
	"fmt"

	"postern/internal/config"
	"postern/internal/mailauth"
	"postern/internal/pkcs11"
	"postern/internal/tlsconf"
)

// checkTokenKey finds the key uri names in its token and has it sign a
// test digest, adding a "pkcs11" result: the token and key found, or
// what is wrong (PIN, token, key, module, or a build without PKCS#11)
// and the fix. It returns the key, or nil.
func (c *Checker) checkTokenKey(uri, what string) *pkcs11.Key {
	k, err := c.Tokens.Key(uri)
	if err != nil {
		fix := "check [pkcs11] and the URI (docs/tls.md, keys in a hardware security module)"
		var pe *pkcs11.Error
		if errors.As(err, &pe) {
			fix = pe.Fix
		}
		c.fail("pkcs11", "", what+": "+err.Error(), fix)
		return nil
	}
	if err := k.SelfTest(); err != nil {
		c.fail("pkcs11", "", what+": "+err.Error(), "check the token with pkcs11-tool --module "+k.Info().Module+" --test --login")
		return nil
	}
	c.ok("pkcs11", "", fmt.Sprintf("%s: %s; a test signature verifies", what, k.Info()))
	return k
}

// readCertificate reads a certificate to check and its key: a key file,
// or a key in a token (checked with checkTokenKey). It returns nil when
// a token key failed (already reported).
func (c *Checker) readCertificate(f config.CertificateFiles) (*tls.Certificate, error) {
	if !tlsconf.IsKeyURI(f.KeyFile) {
		return tlsconf.ReadCertificate(f.CertFile, f.KeyFile)
	}
	k := c.checkTokenKey(f.KeyFile, "certificate "+f.CertFile)
	if k == nil {
		return nil, nil
	}
	return tlsconf.ReadCertificateKey(f.CertFile, f.KeyFile, func(string) (crypto.Signer, error) { return k, nil })
}

// configuredDKIMKeys loads each [[mail_auth.dkim_key]] as serve does,
// reporting those that fail.
func (c *Checker) configuredDKIMKeys() []mailauth.SigningKey {
	var keys []mailauth.SigningKey
	for i, dk := range c.Config.MailAuth.DKIMKeys {
		what := fmt.Sprintf("mail_auth.dkim_key[%d] (%s, selector %s)", i, dk.Domain, dk.Selector)
		if config.IsKeyURI(dk.KeyFile) {
			if k := c.checkTokenKey(dk.KeyFile, what); k != nil {
				keys = append(keys, mailauth.SigningKey{Domain: dk.Domain, Selector: dk.Selector, Key: k})
			}
			continue
		}
		k, err := mailauth.LoadKeyFile(dk.KeyFile)
		if err != nil {
			c.fail("dkim", dk.Domain, what+": "+err.Error(), "correct key_file, or make a key: postern dkim keygen "+dk.Domain)
			continue
		}
		keys = append(keys, mailauth.SigningKey{Domain: dk.Domain, Selector: dk.Selector, Key: k})
	}
	return keys
}
