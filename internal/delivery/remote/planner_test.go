package remote

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"net/netip"
	"testing"

	"postern/internal/delivery/policy"
	"postern/internal/dns"
)

// fakeResolver answers from maps; every answer is Authentic when auth is
// set (as from a validating resolver).
type fakeResolver struct {
	mx   map[string][]dns.MX
	ip   map[string][]netip.Addr
	tlsa map[string][]dns.TLSA
	auth bool
}

func (r *fakeResolver) LookupMX(ctx context.Context, name string) ([]dns.MX, dns.Result, error) {
	if m, ok := r.mx[name]; ok {
		return m, dns.Result{Authentic: r.auth}, nil
	}
	return nil, dns.Result{Authentic: r.auth}, fmt.Errorf("mx %s: %w", name, dns.ErrNXDomain)
}

func (r *fakeResolver) LookupIP(ctx context.Context, host string) ([]netip.Addr, dns.Result, error) {
	if a, ok := r.ip[host]; ok {
		return a, dns.Result{Authentic: r.auth}, nil
	}
	return nil, dns.Result{Authentic: r.auth}, fmt.Errorf("ip %s: %w", host, dns.ErrNXDomain)
}

func (r *fakeResolver) LookupTXT(ctx context.Context, name string) ([]string, dns.Result, error) {
	return nil, dns.Result{Authentic: r.auth}, fmt.Errorf("txt %s: %w", name, dns.ErrNoData)
}

func (r *fakeResolver) LookupTLSA(ctx context.Context, name string) ([]dns.TLSA, dns.Result, error) {
	if t, ok := r.tlsa[name]; ok {
		return t, dns.Result{Authentic: r.auth}, nil
	}
	return nil, dns.Result{Authentic: r.auth}, fmt.Errorf("tlsa %s: %w", name, dns.ErrNoData)
}

func (r *fakeResolver) LookupPTR(ctx context.Context, ip netip.Addr) ([]string, dns.Result, error) {
	return nil, dns.Result{}, fmt.Errorf("ptr: %w", dns.ErrNoData)
}

// TestWithPolicyEngine runs the client with the real policy.Engine, so
// that Host.Verify (WebPKI for a configured "verify", DANE-EE for TLSA)
// decides, not a test hook.
func TestWithPolicyEngine(t *testing.T) {
	good, goodX := testCert("mx.example.test")
	wrong, _ := testCert("mx.example.test") // same name, untrusted key
	spki := sha256.Sum256(goodX.RawSubjectPublicKeyInfo)
	for _, c := range []struct {
		name   string
		dane   bool
		cert   *x509.Certificate
		served bool // the server presents the good certificate
		ok     bool
		label  string
	}{
		{"config verify, trusted", false, goodX, true, true, "starttls"},
		{"config verify, untrusted", false, goodX, false, false, ""},
		{"dane, matching", true, goodX, true, true, "dane"},
		{"dane, not matching", true, goodX, false, false, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			cert := wrong
			if c.served {
				cert = good
			}
			s := newFake(t, "127.0.0.2", func(s *fakeServer) {
				s.Ext = []string{"STARTTLS"}
				s.TLS = serverTLS(cert)
			})
			ap := netip.MustParseAddrPort(s.Addr)
			res := &fakeResolver{
				mx: map[string][]dns.MX{"example.test": {{Host: "mx.example.test", Pref: 10}}},
				ip: map[string][]netip.Addr{"mx.example.test": {ap.Addr()}},
			}
			roots := x509.NewCertPool()
			opts := policy.Options{Resolver: res, Roots: roots}
			if c.dane {
				res.auth = true
				res.tlsa = map[string][]dns.TLSA{"_25._tcp.mx.example.test": {{Usage: 3, Selector: 1, MatchingType: 1, Data: spki[:]}}}
			} else {
				roots.AddCert(c.cert)
				opts.Minimum = map[string]policy.Mode{"example.test": policy.Verify}
			}
			f := newFixture(t, nil, s)
			f.d.Planner = policy.New(opts)
			r := f.one(t, testMsg("b@example.test"))
			if !c.ok {
				failed(t, r, false, "TLS verification")
				return
			}
			delivered(t, r)
			if r[0].TLS != c.label {
				t.Errorf("TLS %q, want %q", r[0].TLS, c.label)
			}
		})
	}
}
