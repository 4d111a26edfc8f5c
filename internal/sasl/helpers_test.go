package sasl

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xdg-go/scram"

	"postern/internal/testcert"
)

// memSecrets is an in-memory SecretLookup. Users are keyed by lower-cased
// name. "tempfail" gets ErrTemporary.
type memSecrets struct {
	mu    sync.Mutex
	scram map[string]SCRAMCredentials // key: hash + " " + user
	cram  map[string]CRAMMD5Secret
	calls int
}

func newMemSecrets() *memSecrets {
	return &memSecrets{scram: map[string]SCRAMCredentials{}, cram: map[string]CRAMMD5Secret{}}
}

// add stores the secrets of a user, canonical name canon, for both hashes
// (salt fixed per hash) and CRAM-MD5.
func (m *memSecrets) add(t testing.TB, name, canon, password string) {
	t.Helper()
	for _, h := range []string{HashSHA1, HashSHA256} {
		c, err := NewSCRAMCredentials(canon, password, h, 4096, []byte("0123456789abcdef"))
		if err != nil {
			t.Fatal(err)
		}
		m.scram[h+" "+strings.ToLower(name)] = c
	}
	m.cram[strings.ToLower(name)] = NewCRAMMD5Secret(canon, password)
}

func (m *memSecrets) SCRAM(ctx context.Context, username, hash string) (SCRAMCredentials, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	if username == "tempfail" {
		return SCRAMCredentials{}, fmt.Errorf("mem: %w", ErrTemporary)
	}
	c, ok := m.scram[hash+" "+strings.ToLower(username)]
	if !ok {
		return SCRAMCredentials{}, fmt.Errorf("mem: no user: %w", ErrInvalidCredentials)
	}
	return c, nil
}

func (m *memSecrets) CRAMMD5(ctx context.Context, username string) (CRAMMD5Secret, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	if username == "tempfail" {
		return CRAMMD5Secret{}, fmt.Errorf("mem: %w", ErrTemporary)
	}
	c, ok := m.cram[strings.ToLower(username)]
	if !ok {
		return CRAMMD5Secret{}, fmt.Errorf("mem: no user: %w", ErrInvalidCredentials)
	}
	return c, nil
}

// rfcSecrets holds the users of the RFC 5802 and RFC 7677 examples: "user"
// with password "pencil", with the examples' salts.
func rfcSecrets(t testing.TB) *memSecrets {
	t.Helper()
	m := newMemSecrets()
	for _, v := range []struct {
		hash string
		gen  scram.HashGeneratorFcn
		salt string
	}{
		{HashSHA1, scram.SHA1, "QSXCR+Q6sek8bf92"},
		{HashSHA256, scram.SHA256, "W22ZaJ0SNY7soEsUEjb6gQ=="},
	} {
		salt, _ := base64.StdEncoding.DecodeString(v.salt)
		// RFC 5802's salt has 12 octets, fewer than NewSCRAMCredentials
		// accepts: derive with the library's client.
		cl, err := v.gen.NewClient("user", "pencil", "")
		if err != nil {
			t.Fatal(err)
		}
		sc, err := cl.GetStoredCredentialsWithError(scram.KeyFactors{Salt: string(salt), Iters: 4096})
		if err != nil {
			t.Fatal(err)
		}
		m.scram[v.hash+" user"] = SCRAMCredentials{User: "user", Salt: salt, Iterations: 4096, StoredKey: sc.StoredKey, ServerKey: sc.ServerKey}
	}
	return m
}

// testCA is a CA that signs a server certificate for 127.0.0.1 and client
// certificates.
type testCA struct{ *testcert.CA }

func newTestCA() *testCA { return &testCA{testcert.NewCA()} }

// issue makes a leaf certificate: a server one for 127.0.0.1 and
// "mx.example.org" when emails is nil, a client one with those SAN
// emails otherwise.
func (ca *testCA) issue(cn string, emails ...string) tls.Certificate {
	if emails != nil {
		return ca.Issue(testcert.Spec{CommonName: cn, EmailAddresses: emails, Client: true})
	}
	return ca.Issue(testcert.Spec{CommonName: cn, DNSNames: []string{"mx.example.org"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}})
}

// tlsPair makes a real TLS connection over loopback and returns both
// ends, handshakes done. client may be nil.
func tlsPair(t testing.TB, srvConf, cliConf *tls.Config) (srv, cli *tls.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	type res struct {
		c   *tls.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			ch <- res{nil, err}
			return
		}
		tc := tls.Server(c, srvConf)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		ch <- res{tc, tc.Handshake()}
	}()
	c, err := tls.Dial("tcp", l.Addr().String(), cliConf)
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { c.Close(); r.c.Close() })
	return r.c, c
}
