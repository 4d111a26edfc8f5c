package tlsconf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"postern/internal/fsutil"
)

// readPair reads and checks a certificate chain and its key.
func readPair(certFile, keyFile string) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: read certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: read key: %w", err)
	}
	chain, err := parseChain(certFile, certPEM)
	if err != nil {
		return nil, err
	}
	if !hasBlock(keyPEM, func(t string) bool { return t == "PRIVATE KEY" || t == "EC PRIVATE KEY" || t == "RSA PRIVATE KEY" }) {
		return nil, fmt.Errorf("tlsconf: key file %s: no PEM private key block", keyFile)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: key file %s does not go with certificate file %s: %w", keyFile, certFile, err)
	}
	cert.Leaf = chain.Leaf // the same first CERTIFICATE block, parsed once
	return &cert, nil
}

// parseChain parses the PEM CERTIFICATE blocks of certPEM, read from
// certFile, into a chain in file order (leaf first) with Leaf set and no
// key; each must parse, and there must be one.
func parseChain(certFile string, certPEM []byte) (*tls.Certificate, error) {
	cert := &tls.Certificate{}
	for rest := certPEM; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		x, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("tlsconf: certificate file %s: certificate %d: %w", certFile, len(cert.Certificate)+1, err)
		}
		if cert.Leaf == nil {
			cert.Leaf = x
		}
		cert.Certificate = append(cert.Certificate, b.Bytes)
	}
	if len(cert.Certificate) == 0 {
		return nil, fmt.Errorf("tlsconf: certificate file %s: no PEM CERTIFICATE block", certFile)
	}
	return cert, nil
}

// hasBlock reports whether data holds a PEM block of a type ok accepts.
func hasBlock(data []byte, ok func(string) bool) bool {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return false
		}
		if ok(b.Type) {
			return true
		}
	}
}

// EnsureSelfSigned makes sure dir holds a self-signed certificate
// (cert.pem) and its key (key.pem), and returns their paths. When both
// files exist they are kept as they are. Otherwise it creates dir (mode
// 0700) and a new ECDSA P-256 key and certificate: subject and DNS names
// the hosts (an IP address among them becomes an IP name), plus 127.0.0.1
// and ::1 when "localhost" is among them; valid from an hour before now
// for one year; a random 128-bit serial; for server authentication. Both
// files are written atomically (temporary file, fsync, rename, fsync of
// dir), the key with mode 0600.
func EnsureSelfSigned(dir string, hosts []string, now time.Time) (certFile, keyFile string, err error) {
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if exists(certFile) && exists(keyFile) {
		return certFile, keyFile, nil
	}
	if len(hosts) == 0 {
		return "", "", errors.New("tlsconf: self-signed certificate: no host name")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("tlsconf: self-signed certificate: %w", err)
	}
	certPEM, keyPEM, err := selfSigned(hosts, now)
	if err != nil {
		return "", "", err
	}
	if err := fsutil.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return "", "", err
	}
	if err := fsutil.WriteFile(certFile, certPEM, 0o644); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}

func exists(name string) bool {
	_, err := os.Stat(name)
	return err == nil
}

// selfSigned creates the PEM certificate and PKCS #8 key.
func selfSigned(hosts []string, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("tlsconf: generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, nil, fmt.Errorf("tlsconf: generate serial: %w", err)
	}
	serial.Add(serial, big.NewInt(1)) // never zero (RFC 5280 §4.1.2.2)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: hosts[0]},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(1, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if !slices.Contains(tmpl.DNSNames, h) {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	if slices.Contains(hosts, "localhost") {
		for _, ip := range []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback} {
			if !slices.ContainsFunc(tmpl.IPAddresses, ip.Equal) {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			}
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("tlsconf: create certificate: %w", err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("tlsconf: encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), nil
}
