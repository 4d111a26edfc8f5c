//go:build cgo

package tlsconf

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"postern/internal/pkcs11"
	"postern/internal/pkcs11/pkcs11test"
	"postern/internal/testcert"
)

// BenchmarkHandshakeKeyInToken measures full TLS 1.3 handshakes (no
// resumption) served by Certs, side by side: the key in a file, and the
// key in a SoftHSM2 token through crypto11 (pkcs11.Key). Both sides run
// in this process over net.Pipe; the client verifies the chain. Run:
//
//	go test -run '^$' -bench HandshakeKeyInToken -benchtime 3s ./internal/tlsconf/
//
// The "parallel" runs use b.RunParallel (GOMAXPROCS goroutines). The
// metrics are handshakes/s (wall clock) and cpu-µs/handshake: the
// process's CPU time (client, server and the token's library, all in
// this process) per handshake, which other load on the machine changes
// less than the rate.
func BenchmarkHandshakeKeyInToken(b *testing.B) {
	h := pkcs11test.New(b, "T")
	h.GenerateKey("ec", "01", "EC:prime256v1")
	h.GenerateKey("rsa", "02", "rsa:2048")
	tokens := pkcs11.New(pkcs11.Options{Module: pkcs11test.Module, PINFile: h.PINFile, ReadSecret: pkcs11test.ReadPIN, Timeout: 5 * time.Second})
	b.Cleanup(func() { tokens.Close() })
	ca := testcert.NewCA()
	dir := b.TempDir()
	spec := testcert.Spec{DNSNames: []string{"mail.example.com"}}
	for _, kt := range []struct {
		name, label string
		rsa         bool
	}{{"ECDSA-P256", "ec", false}, {"RSA-2048", "rsa", true}} {
		tk, err := tokens.Key(h.URI(kt.label))
		if err != nil {
			b.Fatal(err)
		}
		fileSpec := spec
		fileSpec.RSA = kt.rsa
		pairs := map[string]Pair{}
		fc := ca.Issue(fileSpec)
		pairs["file"] = Pair{filepath.Join(dir, kt.label+"-file.pem"), filepath.Join(dir, kt.label+"-file.key")}
		testcert.WriteFiles(b, fc, pairs["file"].CertFile, pairs["file"].KeyFile)
		tc := ca.IssueKey(spec, tk)
		pairs["token"] = Pair{filepath.Join(dir, kt.label+"-token.pem"), h.URI(kt.label)}
		os.WriteFile(pairs["token"].CertFile, testcert.ChainPEM(tc), 0o644)
		for _, src := range []string{"file", "token"} {
			certs, err := OpenCerts(Options{Pairs: []Pair{pairs[src]}, Check: CheckOptions{Roots: ca.Pool},
				Keys: func(uri string) (crypto.Signer, error) { return tokens.Key(uri) }})
			if err != nil {
				b.Fatal(err)
			}
			srv := ServerConfig(certs, Policy{SessionTicketsDisabled: true})
			cli := &tls.Config{RootCAs: ca.Pool, ServerName: "mail.example.com"}
			one := func() {
				c1, c2 := net.Pipe()
				done := make(chan error, 1)
				// The pipes, not the TLS connections, are closed: a
				// close_notify nobody reads would wait 5 s.
				go func() { done <- tls.Server(c2, srv).Handshake(); c2.Close() }()
				err := tls.Client(c1, cli).Handshake()
				c1.Close()
				if err != nil {
					b.Fatal(err)
				}
				if err := <-done; err != nil {
					b.Fatal(err)
				}
			}
			b.Run(kt.name+"/"+src, func(b *testing.B) {
				cpu := cpuTime()
				for b.Loop() {
					one()
				}
				report(b, cpu)
			})
			b.Run(kt.name+"/"+src+"/parallel", func(b *testing.B) {
				cpu := cpuTime()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						one()
					}
				})
				report(b, cpu)
			})
		}
		// The signature alone, the part the token changes.
		d := sha256.Sum256([]byte("handshake transcript"))
		opts := crypto.SignerOpts(crypto.SHA256)
		if kt.rsa {
			opts = &rsaPSS
		}
		for src, k := range map[string]crypto.Signer{"file": fc.PrivateKey.(crypto.Signer), "token": tk} {
			b.Run(kt.name+"/"+src+"/sign", func(b *testing.B) {
				cpu := cpuTime()
				for b.Loop() {
					if _, err := k.Sign(rand.Reader, d[:], opts); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/float64(b.N), "cpu-µs/op")
			})
		}
	}
}

// rsaPSS are the options TLS 1.3 signs with an RSA key (RFC 8446 §4.2.3).
var rsaPSS = rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}
