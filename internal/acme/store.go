package acme

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"postern/internal/fsutil"
)

// store keeps the account key and the certificate on disk:
//
//	DIR/account.key        the account's ECDSA P-256 key (PKCS #8 PEM)
//	DIR/NAME/cert.pem      the chain, leaf first
//	DIR/NAME/key.pem       the certificate's key (PKCS #8 PEM)
//
// NAME is the first host name. Directories are 0700, files 0600, and
// every file is written atomically (temporary file, fsync, rename,
// fsync of the directory).
type store struct {
	dir  string
	name string
}

// CertFiles returns the certificate chain and key files of the
// certificate for hostnames[0] under dir: dir/NAME/cert.pem and
// dir/NAME/key.pem.
func CertFiles(dir string, hostnames []string) (certFile, keyFile string) {
	if len(hostnames) == 0 {
		return "", ""
	}
	d := filepath.Join(dir, hostnames[0])
	return filepath.Join(d, "cert.pem"), filepath.Join(d, "key.pem")
}

// accountKey reads the account key, making it on first use.
func (s store) accountKey() (crypto.Signer, error) {
	path := filepath.Join(s.dir, "account.key")
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("acme: generate account key: %w", err)
		}
		p, err := encodeKey(k)
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(s.dir, 0o700); err != nil {
			return nil, fmt.Errorf("acme: %w", err)
		}
		if err := fsutil.WriteFile(path, p, 0o600); err != nil {
			return nil, err
		}
		return k, nil
	}
	if err != nil {
		return nil, fmt.Errorf("acme: account key: %w", err)
	}
	k, err := decodeKey(b)
	if err != nil {
		return nil, fmt.Errorf("acme: account key %s: %w", path, err)
	}
	return k, nil
}

// loadCert reads the stored certificate.
func (s store) loadCert() (*tls.Certificate, error) {
	certFile, keyFile := CertFiles(s.dir, []string{s.name})
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("acme: stored certificate: %w", err)
	}
	if c.Leaf == nil {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return nil, fmt.Errorf("acme: stored certificate %s: %w", certFile, err)
		}
	}
	return &c, nil
}

// saveCert stores a chain and its key, the key first.
func (s store) saveCert(der [][]byte, key crypto.Signer) error {
	certFile, keyFile := CertFiles(s.dir, []string{s.name})
	if err := os.MkdirAll(filepath.Dir(certFile), 0o700); err != nil {
		return fmt.Errorf("acme: %w", err)
	}
	var chain []byte
	for _, d := range der {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d})...)
	}
	k, err := encodeKey(key)
	if err != nil {
		return err
	}
	// A crash between the two renames leaves a new key with the old
	// chain; loadCert then fails and the loop obtains a new certificate.
	if err := fsutil.WriteFile(keyFile, k, 0o600); err != nil {
		return err
	}
	return fsutil.WriteFile(certFile, chain, 0o600)
}

func encodeKey(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("acme: encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func decodeKey(b []byte) (crypto.Signer, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, errors.New("no PEM PRIVATE KEY block")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported key type %T", k)
	}
	return s, nil
}
