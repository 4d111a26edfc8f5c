package config

import (
	"fmt"
	"time"
)

// MinTicketRotation is the shortest tls.ticket_rotation accepted.
const MinTicketRotation = time.Minute

// DefaultTicketRotation is tls.ticket_rotation: a key encrypts the
// tickets of 12 hours, and decrypts for two rotations more.
const DefaultTicketRotation = 12 * time.Hour

// TLSExtra holds the [tls] keys for several certificates, the trusted
// roots and session tickets. It is embedded in TLS, so its fields read
// as c.TLS.Certificates and so on.
type TLSExtra struct {
	// Certificates are the [[tls.certificate]] tables: further
	// certificates served besides (or instead of) cert_file/key_file,
	// each chosen by the names in its SANs and the key types the client
	// supports (ECDSA before RSA).
	Certificates []CertificateFiles
	// CAFile is a PEM bundle of the roots certificates are checked
	// against at start and reload (tls.ca_file); "" means the system
	// roots.
	CAFile string
	// TicketRotation is how often session ticket keys rotate
	// (tls.ticket_rotation), at least MinTicketRotation.
	TicketRotation time.Duration
}

// CertificateFiles is one [[tls.certificate]] table.
type CertificateFiles struct {
	// CertFile is the PEM certificate chain, leaf first (cert_file).
	CertFile string
	// KeyFile is the PEM private key of the leaf (key_file).
	KeyFile string
}

// ListenerTLS holds a listener's TLS keys. It is embedded in Listener.
type ListenerTLS struct {
	// NoTLSTickets is true when the listener sets tls_tickets = false:
	// no session tickets are issued or accepted there (some Microsoft
	// clients fail STARTTLS with Go's tickets).
	NoTLSTickets bool
}

// TLSCertificateFiles returns every certificate and key pair to serve,
// the first being the default: TLSFiles (when set, or self-signed), then
// each [[tls.certificate]].
func (c *Config) TLSCertificateFiles() []CertificateFiles {
	var out []CertificateFiles
	if cf, kf := c.TLSFiles(); cf != "" && kf != "" {
		out = append(out, CertificateFiles{CertFile: cf, KeyFile: kf})
	}
	return append(out, c.TLS.Certificates...)
}

// tlsExtra decodes the keys of TLSExtra from the [tls] table t.
func (d *decoder) tlsExtra(t map[string]any, dir string, x *TLSExtra) {
	d.path(t, "ca_file", "tls.ca_file", dir, &x.CAFile)
	if du, ok := d.duration(t, "ticket_rotation", "tls.ticket_rotation"); ok {
		x.TicketRotation = du
	}
	v, ok := t["certificate"]
	if !ok {
		return
	}
	keys, tables := d.tables(v, "tls.certificate")
	for i, ct := range tables {
		k := keys[i]
		d.unknown(ct, []string{"tls", "certificate"}, "cert_file", "key_file")
		var f CertificateFiles
		d.path(ct, "cert_file", k+".cert_file", dir, &f.CertFile)
		if d.str(ct, "key_file", k+".key_file", &f.KeyFile) {
			f.KeyFile = resolveKey(dir, f.KeyFile) // a path, or a pkcs11: URI
		}
		x.Certificates = append(x.Certificates, f)
	}
}

// listenerTLS decodes the TLS keys of the [[listener]] table t, whose
// key prefix is k.
func (d *decoder) listenerTLS(t map[string]any, k string, l *ListenerTLS) {
	on := true
	d.boolean(t, "tls_tickets", k+".tls_tickets", &on)
	l.NoTLSTickets = !on
}

// validateTLSExtra checks the TLSExtra and ListenerTLS values.
func (c *Config) validateTLSExtra(p *problems) {
	for i, f := range c.TLS.Certificates {
		k := fmt.Sprintf("tls.certificate[%d]", i)
		if f.CertFile == "" {
			p.addf(k+".cert_file", "is required")
		}
		if f.KeyFile == "" {
			p.addf(k+".key_file", "is required")
		}
	}
	if c.TLS.SelfSigned && len(c.TLS.Certificates) > 0 {
		p.addf("tls.self_signed", "is true, but [[tls.certificate]] is set; use one or the other")
	}
	if c.TLS.TicketRotation < MinTicketRotation {
		p.addf("tls.ticket_rotation", "%s is shorter than %s", c.TLS.TicketRotation, MinTicketRotation)
	}
}
