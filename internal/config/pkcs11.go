package config

import (
	"fmt"
	"time"

	"postern/internal/pkcs11"
)

// DefaultPKCS11Timeout is pkcs11.timeout: how long one signature by the
// token may take.
const DefaultPKCS11Timeout = 5 * time.Second

// PKCS11 is the [pkcs11] table: the token that holds the private keys
// named by "pkcs11:" URIs (RFC 7512) in tls.key_file,
// tls.certificate[].key_file and mail_auth.dkim_key[].key_file.
type PKCS11 struct {
	// Module is the token's PKCS#11 library, for URIs without
	// module-path. There is no default: it depends on the token (for
	// SoftHSM2, /usr/lib/softhsm/libsofthsm2.so).
	Module string
	// PINFile holds the token's user PIN on its first line, for URIs
	// without pin-source.
	PINFile string
	// Timeout bounds one signature by the token (a TLS handshake waits
	// that long at most); greater than 0.
	Timeout time.Duration
}

// IsKeyURI reports whether a key_file value names a key in a PKCS#11
// token ("pkcs11:...") rather than a file. Such values are kept as
// written, never resolved as paths.
func IsKeyURI(s string) bool { return pkcs11.IsURI(s) }

// resolveKey resolves a key_file value: a path relative to dir, or a
// PKCS#11 URI kept as it is.
func resolveKey(dir, s string) string {
	if IsKeyURI(s) {
		return s
	}
	return resolve(dir, s)
}

// pkcs11Table decodes the [pkcs11] table.
func (d *decoder) pkcs11Table(t map[string]any, dir string, p *PKCS11) {
	if t == nil {
		return
	}
	d.unknown(t, []string{"pkcs11"}, "module", "pin_file", "timeout")
	d.path(t, "module", "pkcs11.module", dir, &p.Module)
	d.path(t, "pin_file", "pkcs11.pin_file", dir, &p.PINFile)
	if du, ok := d.duration(t, "timeout", "pkcs11.timeout"); ok {
		p.Timeout = du
	}
}

// keyRefs returns every configured private key with its key name.
func (c *Config) keyRefs() map[string]string {
	refs := map[string]string{}
	if !c.TLS.SelfSigned && c.TLS.KeyFile != "" {
		refs["tls.key_file"] = c.TLS.KeyFile
	}
	for i, f := range c.TLS.Certificates {
		refs[fmt.Sprintf("tls.certificate[%d].key_file", i)] = f.KeyFile
	}
	for i, k := range c.MailAuth.DKIMKeys {
		refs[fmt.Sprintf("mail_auth.dkim_key[%d].key_file", i)] = k.KeyFile
	}
	return refs
}

// validatePKCS11 checks [pkcs11] and every key URI: it parses, and its
// module and PIN file are known.
func (c *Config) validatePKCS11(p *problems) {
	if c.PKCS11.Timeout <= 0 {
		p.addf("pkcs11.timeout", "must be greater than 0")
	}
	refs := c.keyRefs()
	for _, key := range sortedKeys(refs) {
		ref := refs[key]
		if !IsKeyURI(ref) {
			continue
		}
		u, err := pkcs11.ParseURI(ref)
		if err != nil {
			p.add(key, err)
			continue
		}
		if u.ModulePath == "" && c.PKCS11.Module == "" {
			p.addf(key, "%s needs a PKCS#11 module: set [pkcs11] module (for SoftHSM2, \"/usr/lib/softhsm/libsofthsm2.so\") or add module-path= to the URI", u)
		}
		if u.PINSource == "" && c.PKCS11.PINFile == "" {
			p.addf(key, "%s needs the token's PIN: set [pkcs11] pin_file (a file with the PIN on its first line) or add pin-source=file:/PATH to the URI", u)
		}
	}
}

// UsesPKCS11 reports whether a key_file names a key in a PKCS#11 token.
func (c *Config) UsesPKCS11() bool {
	for _, ref := range c.keyRefs() {
		if IsKeyURI(ref) {
			return true
		}
	}
	return false
}
