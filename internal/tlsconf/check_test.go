package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"strings"
	"testing"
	"time"
)

func TestCheckChainCases(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	other := makeCert(t, certSpec{cn: "mail.example.com"}) // an unrelated key
	expired := p.issue(t, certSpec{cn: "mail.example.com", names: []string{"mail.example.com"}, from: testNow.Add(-100 * 24 * time.Hour), to: testNow.Add(-10 * 24 * time.Hour)})
	future := p.issue(t, certSpec{cn: "mail.example.com", names: []string{"mail.example.com"}, from: testNow.Add(48 * time.Hour)})
	selfs := makeCert(t, certSpec{cn: "mail.example.com", names: []string{"mail.example.com"}})
	otherRoot := makeCert(t, certSpec{cn: "Other Root", ca: true})
	otherInter := makeCert(t, certSpec{cn: "Other Intermediate", ca: true, parent: otherRoot})
	stranger := makeCert(t, certSpec{cn: "mail.example.com", names: []string{"mail.example.com"}, parent: otherInter})
	clientOnly := p.issue(t, certSpec{cn: "mail.example.com", names: []string{"mail.example.com"}, clientEKU: true})

	opts := CheckOptions{Roots: p.roots, Hostnames: []string{"mail.example.com"}, Now: testNow}
	tests := []struct {
		name string
		cert *testCert
		key  *testCert
		rest []*testCert
		opts func(CheckOptions) CheckOptions
		kind ProblemKind
		want []string // in Message, Cert or Fix
	}{
		{"good", p.leaf, nil, []*testCert{p.inter}, nil, "", nil},
		{"good with root", p.leaf, nil, []*testCert{p.inter, p.root}, nil, "", nil},
		{"missing intermediate", p.leaf, nil, nil, nil, ProblemMissingIntermediate,
			[]string{"certificate 1 of 1 (leaf \"mail.example.com\"", `issuer "CN=Test Intermediate" is not in the certificate file`, "append the intermediate"}},
		{"wrong order", p.leaf, nil, []*testCert{p.root, p.inter}, nil, ProblemWrongOrder,
			[]string{"certificate 2 of 3 (root \"Test Root\"", `certificate 1 ("mail.example.com") is issued by certificate 3 ("Test Intermediate")`, "order the certificate file"}},
		{"leaf not first", p.inter, p.leaf, []*testCert{p.leaf}, nil, ProblemWrongOrder,
			[]string{"the leaf (the certificate of the private key) is certificate 2", "put the leaf first"}},
		{"expired leaf", expired, nil, []*testCert{p.inter}, nil, ProblemExpired,
			[]string{"certificate 1 of 2 (leaf", "expired on " + testNow.Add(-10*24*time.Hour).Format(time.RFC3339), "240h0m0s ago", "renew the certificate"}},
		{"not yet valid", future, nil, []*testCert{p.inter}, nil, ProblemNotYetValid,
			[]string{"not valid before " + testNow.Add(48*time.Hour).Format(time.RFC3339), "in 48h0m0s", "clock"}},
		{"wrong hostname", p.leaf, nil, []*testCert{p.inter}, func(o CheckOptions) CheckOptions {
			o.Hostnames = []string{"smtp.example.net"}
			return o
		}, ProblemWrongHostname, []string{`does not cover host name "smtp.example.net"`, `"mail.example.com", "*.example.org"`, `include "smtp.example.net"`}},
		{"wildcard covers", p.leaf, nil, []*testCert{p.inter}, func(o CheckOptions) CheckOptions {
			o.Hostnames = []string{"smtp.example.org"}
			return o
		}, "", nil},
		{"key mismatch", p.leaf, other, []*testCert{p.inter}, nil, ProblemKeyMismatch,
			[]string{"the private key does not belong to this certificate", "use the key file generated with this certificate's request"}},
		{"self-signed in production", selfs, nil, nil, nil, ProblemSelfSigned,
			[]string{"is self-signed: no client trusts it", "tls.self_signed = true is for development only"}},
		{"self-signed in dev mode", selfs, nil, nil, func(o CheckOptions) CheckOptions {
			o.AllowSelfSigned = true
			return o
		}, "", nil},
		{"unknown root", stranger, nil, []*testCert{otherInter, otherRoot}, nil, ProblemUnknownRoot,
			[]string{"certificate 3 of 3 (root \"Other Root\"", "not trusted", "tls.ca_file"}},
		{"unknown issuer of intermediate", stranger, nil, []*testCert{otherInter}, nil, ProblemUnknownRoot,
			[]string{`its issuer "CN=Other Root" is neither in the certificate file nor a trusted root`}},
		{"client certificate", clientOnly, nil, []*testCert{p.inter}, nil, ProblemUsage,
			[]string{"lacks serverAuth"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := tt.cert.key
			if tt.key != nil {
				key = tt.key.key
			}
			o := opts
			if tt.opts != nil {
				o = tt.opts(o)
			}
			probs := Check(tlsCert(key, append([]*testCert{tt.cert}, tt.rest...)...), o)
			if tt.kind == "" {
				if len(probs) != 0 {
					t.Fatalf("problems: %v", probs)
				}
				return
			}
			if len(probs) != 1 {
				t.Fatalf("want one %s problem, got %d: %v", tt.kind, len(probs), probs)
			}
			pr := probs[0]
			if pr.Kind != tt.kind {
				t.Errorf("kind %s, want %s: %v", pr.Kind, tt.kind, pr)
			}
			s := pr.String()
			for _, w := range tt.want {
				if !strings.Contains(s, w) {
					t.Errorf("%q does not contain %q", s, w)
				}
			}
			t.Log(s)
		})
	}
}

func TestCheckSystemRoots(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	// With the system roots, the test root is unknown.
	probs := Check(tlsCert(p.leaf.key, p.leaf, p.inter, p.root), CheckOptions{Now: testNow})
	if len(probs) != 1 || probs[0].Kind != ProblemUnknownRoot {
		t.Fatalf("problems: %v", probs)
	}
	_ = x509.NewCertPool
}

func TestCheckSetCoverage(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	a := p.issue(t, certSpec{cn: "a.example.com", names: []string{"a.example.com"}})
	b := p.issue(t, certSpec{cn: "b.example.com", names: []string{"b.example.com"}, rsa: true})
	o := CheckOptions{Roots: p.roots, Now: testNow, Hostnames: []string{"a.example.com", "b.example.com"}}
	set := []string{"a.pem", "b.pem"}
	if probs := CheckSet(toTLS(p, a, b), set, o); len(probs) != 0 {
		t.Fatalf("problems: %v", probs)
	}
	o.Hostnames = append(o.Hostnames, "c.example.com")
	probs := CheckSet(toTLS(p, a, b), set, o)
	if len(probs) != 1 || probs[0].Kind != ProblemWrongHostname || !strings.Contains(probs[0].String(), `no certificate covers host name "c.example.com"`) || !strings.Contains(probs[0].Cert, "a.pem, b.pem") {
		t.Fatalf("problems: %v", probs)
	}
}

// toTLS returns each leaf with p's intermediate and its own key.
func toTLS(p *testPKI, leaves ...*testCert) []*tls.Certificate {
	var out []*tls.Certificate
	for _, l := range leaves {
		out = append(out, tlsCert(l.key, l, p.inter))
	}
	return out
}
