package mailauth

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"postern/internal/fsutil"
)

// GenerateKey makes a new private key for alg (2048-bit RSA for
// RSASHA256) and returns it with its PEM encoding (PKCS #8).
func GenerateKey(alg Algorithm) (crypto.Signer, []byte, error) {
	var k crypto.Signer
	var err error
	switch alg {
	case Ed25519SHA256:
		_, k, err = ed25519.GenerateKey(rand.Reader)
	case RSASHA256:
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		return nil, nil, fmt.Errorf("mailauth: unknown algorithm %q", alg)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("mailauth: generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, nil, fmt.Errorf("mailauth: encode key: %w", err)
	}
	return k, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// WriteKey writes a new private key, pemBytes, to path (mode 0600),
// making the directories it needs (0700); what it makes is given to
// owner when not nil (a command run as root for a server that runs as
// another user). It never replaces a key: when path exists the error
// matches fs.ErrExist. The file is fsynced before WriteKey returns;
// after a failure nothing is left at path.
func WriteKey(path string, pemBytes []byte, owner *fsutil.Owner) error {
	if err := fsutil.MkdirAll(filepath.Dir(path), 0o700, owner); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	err = owner.Chown(f)
	if err == nil {
		_, err = f.Write(pemBytes)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}

// KeyRecord returns the DNS TXT record that publishes the public half of
// key (RFC 6376 §3.6.1): "v=DKIM1; k=ed25519; p=..." with the raw 32-byte
// key for ed25519 (RFC 8463 §4), the SubjectPublicKeyInfo for RSA.
func KeyRecord(key crypto.Signer) (string, error) {
	switch pub := key.Public().(type) {
	case ed25519.PublicKey:
		return "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub), nil
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return "", fmt.Errorf("mailauth: encode public key: %w", err)
		}
		return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der), nil
	}
	return "", fmt.Errorf("mailauth: unsupported key type %T", key)
}

// RecordKey returns the public key data of a DKIM key record: its p=
// tag (RFC 6376 §3.6.1) without the whitespace that may fold it. It
// fails when the record is not a tag-list (ParseTagList) or has no p=;
// an empty p= (a revoked key) is returned as "".
func RecordKey(record string) (string, error) {
	tags, err := ParseTagList(record)
	if err != nil {
		return "", err
	}
	p, ok := tags["p"]
	if !ok {
		return "", fmt.Errorf("mailauth: DKIM key record lacks p=")
	}
	return stripFWS(p), nil
}

// ZoneRecord returns the zone-file line for a key record:
// `SELECTOR._domainkey.DOMAIN. IN TXT "..." "..."`, the text split into
// strings of at most 255 octets (RFC 1035 §3.3.14; RFC 6376 §3.6.2.2
// joins them back).
func ZoneRecord(domain, selector, record string) string {
	var parts []string
	for len(record) > 255 {
		parts = append(parts, `"`+record[:255]+`"`)
		record = record[255:]
	}
	parts = append(parts, `"`+record+`"`)
	return selector + "._domainkey." + strings.TrimSuffix(strings.ToLower(domain), ".") + ". IN TXT " + strings.Join(parts, " ")
}
