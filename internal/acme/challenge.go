package acme

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	xacme "golang.org/x/crypto/acme"
)

// DNSHook publishes and withdraws the TXT records of DNS-01 challenges
// (RFC 8555 §8.4). Present returns once the record is visible to the
// CA; name is "_acme-challenge.HOST." (fully qualified), value the text.
type DNSHook interface {
	Present(ctx context.Context, name, value string) error
	CleanUp(ctx context.Context, name, value string) error
}

// CommandHook is a DNSHook that runs a program: `Path add NAME VALUE`
// to publish a record and `Path remove NAME VALUE` to withdraw it. The
// program must exit 0 only once the record is published on the
// domain's authoritative servers; what it prints on standard error is
// part of the error when it fails.
type CommandHook struct {
	// Path is the program to run.
	Path string
}

// Present runs `Path add NAME VALUE`.
func (h CommandHook) Present(ctx context.Context, name, value string) error {
	return h.run(ctx, "add", name, value)
}

// CleanUp runs `Path remove NAME VALUE`.
func (h CommandHook) CleanUp(ctx context.Context, name, value string) error {
	return h.run(ctx, "remove", name, value)
}

func (h CommandHook) run(ctx context.Context, verb, name, value string) error {
	cmd := exec.CommandContext(ctx, h.Path, verb, name, value)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 500 {
			msg = msg[:500]
		}
		if msg != "" {
			return fmt.Errorf("acme: dns hook %s %s: %w: %s", verb, name, err, msg)
		}
		return fmt.Errorf("acme: dns hook %s %s: %w", verb, name, err)
	}
	return nil
}

// present sets up the answer to chal for host and returns what removes
// it again.
func (m *Manager) present(ctx context.Context, cl *xacme.Client, host string, chal *xacme.Challenge) (func(), error) {
	switch m.o.Challenge {
	case HTTP01:
		resp, err := cl.HTTP01ChallengeResponse(chal.Token)
		if err != nil {
			return nil, fmt.Errorf("acme: http-01 response: %w", err)
		}
		m.mu.Lock()
		m.http01[chal.Token] = resp
		m.mu.Unlock()
		return func() {
			m.mu.Lock()
			delete(m.http01, chal.Token)
			m.mu.Unlock()
		}, nil
	case TLSALPN01:
		cert, err := cl.TLSALPN01ChallengeCert(chal.Token, host)
		if err != nil {
			return nil, fmt.Errorf("acme: tls-alpn-01 certificate: %w", err)
		}
		m.mu.Lock()
		m.alpn[host] = &cert
		m.mu.Unlock()
		return func() {
			m.mu.Lock()
			delete(m.alpn, host)
			m.mu.Unlock()
		}, nil
	case DNS01:
		value, err := cl.DNS01ChallengeRecord(chal.Token)
		if err != nil {
			return nil, fmt.Errorf("acme: dns-01 record: %w", err)
		}
		name := "_acme-challenge." + strings.TrimSuffix(host, ".") + "."
		if err := m.o.DNSHook.Present(ctx, name, value); err != nil {
			return nil, err
		}
		return func() {
			// The order's context may be over: give the clean-up its own.
			cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := m.o.DNSHook.CleanUp(cctx, name, value); err != nil {
				m.log.Warn("acme dns-01 record not removed", "name", name, "err", err)
			}
		}, nil
	}
	return nil, fmt.Errorf("acme: unknown challenge %q", m.o.Challenge)
}

// wellKnown is the path prefix of HTTP-01 answers (RFC 8555 §8.3).
const wellKnown = "/.well-known/acme-challenge/"

// HTTPHandler answers HTTP-01 challenges at
// /.well-known/acme-challenge/TOKEN while an order waits for them, and
// answers everything else with 404. Serve it on port 80 of every host
// name (Options.Challenge HTTP01).
func (m *Manager) HTTPHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.URL.Path, wellKnown)
		if !ok || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
			http.NotFound(w, r)
			return
		}
		m.mu.Lock()
		resp, ok := m.http01[token]
		m.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		io.WriteString(w, resp)
	})
}

// TLSALPNConfig returns the tls.Config of a TLS-ALPN-01 responder
// (RFC 8737 §3): it offers only the "acme-tls/1" protocol and the
// challenge certificate of the name the client asks for.
func (m *Manager) TLSALPNConfig() *tls.Config {
	return &tls.Config{
		NextProtos: []string{xacme.ALPNProto},
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			if !slices.Contains(hello.SupportedProtos, xacme.ALPNProto) {
				return nil, errors.New("acme: not an acme-tls/1 client")
			}
			m.mu.Lock()
			c := m.alpn[strings.ToLower(hello.ServerName)]
			m.mu.Unlock()
			if c == nil {
				return nil, fmt.Errorf("acme: no tls-alpn-01 challenge for %q", hello.ServerName)
			}
			return c, nil
		},
	}
}

// ServeTLSALPN answers TLS-ALPN-01 challenges on l (port 443 of every
// host name, Options.Challenge TLSALPN01): each connection gets a
// handshake with TLSALPNConfig and is closed (RFC 8737 §3). It returns
// when l is closed, with the error of Accept.
func (m *Manager) ServeTLSALPN(l net.Listener) error {
	cfg := m.TLSALPNConfig()
	for {
		c, err := l.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			tc := tls.Server(c, cfg)
			if err := tc.Handshake(); err == nil {
				tc.Close()
			}
		}()
	}
}

// HTTPClient returns an HTTP client for the CA's directory that trusts
// the system roots plus the PEM certificates in rootsFile ("" for none),
// with a 30-second timeout per request.
func HTTPClient(rootsFile string) (*http.Client, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if rootsFile != "" {
		b, err := os.ReadFile(rootsFile)
		if err != nil {
			return nil, fmt.Errorf("acme: CA roots: %w", err)
		}
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("acme: CA roots: no PEM certificate in %s", rootsFile)
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}, nil
}
