package tlsconf

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// clock is a settable time source.
type clock struct{ t time.Time }

func (c *clock) Now() time.Time { return c.t }

func TestCertsChooseBySNIAndKeyType(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	dir := t.TempDir()
	ec := p.issue(t, certSpec{cn: "mail.example.com", names: []string{"mail.example.com"}})
	rs := p.issue(t, certSpec{cn: "mail.example.com", names: []string{"mail.example.com"}, rsa: true})
	wild := p.issue(t, certSpec{cn: "*.example.org", names: []string{"*.example.org"}})
	c1, k1 := writePair(t, dir, "rsa.pem", "rsa.key", rs.key, rs, p.inter)
	c2, k2 := writePair(t, dir, "ec.pem", "ec.key", ec.key, ec, p.inter)
	c3, k3 := writePair(t, dir, "wild.pem", "wild.key", wild.key, wild, p.inter)
	certs, err := OpenCerts(Options{
		Pairs: []Pair{{c1, k1}, {c2, k2}, {c3, k3}},
		Check: CheckOptions{Roots: p.roots, Hostnames: []string{"mail.example.com"}},
		Now:   (&clock{testNow}).Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := ServerConfig(certs, Policy{})
	cli := func(name string, rsaOnly bool) *tls.Config {
		c := &tls.Config{RootCAs: p.roots, ServerName: name, Time: (&clock{testNow}).Now}
		if name == "" {
			c.InsecureSkipVerify = true // no ServerName: no SNI sent
		}
		if rsaOnly {
			c.MaxVersion = tls.VersionTLS12
			c.CipherSuites = []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}
		}
		return c
	}
	tests := []struct {
		name    string
		sni     string
		rsaOnly bool
		want    *testCert
	}{
		{"ecdsa preferred", "mail.example.com", false, ec},
		{"rsa for an rsa-only client", "mail.example.com", true, rs},
		{"wildcard", "smtp.example.org", false, wild},
		{"upper case sni", "MAIL.Example.COM", false, ec},
		// No SNI (usual on port 25): the default's name, by key type.
		{"no sni", "", false, ec},
		{"no sni, rsa only", "", true, rs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cerr, serr, cs := handshake(t, srv, cli(tt.sni, tt.rsaOnly))
			if cerr != nil || serr != nil {
				t.Fatalf("client %v, server %v", cerr, serr)
			}
			if got := cs.PeerCertificates[0].SerialNumber; got.Cmp(tt.want.x.SerialNumber) != 0 {
				t.Errorf("served serial %x, want %x", got, tt.want.x.SerialNumber)
			}
		})
	}
	for _, tt := range []struct {
		name  string
		hello *tls.ClientHelloInfo
		want  *testCert
	}{
		{"ecdsa-capable", &tls.ClientHelloInfo{
			SignatureSchemes:  []tls.SignatureScheme{tls.PSSWithSHA256, tls.ECDSAWithP256AndSHA256},
			SupportedVersions: []uint16{tls.VersionTLS13},
			SupportedCurves:   []tls.CurveID{tls.X25519},
		}, ec},
		{"rsa only", &tls.ClientHelloInfo{
			SignatureSchemes:  []tls.SignatureScheme{tls.PSSWithSHA256},
			SupportedVersions: []uint16{tls.VersionTLS13},
			SupportedCurves:   []tls.CurveID{tls.X25519},
		}, rs},
	} {
		got, err := certs.GetCertificate(tt.hello)
		if err != nil || got.Leaf.SerialNumber.Cmp(tt.want.x.SerialNumber) != 0 {
			t.Errorf("no SNI, %s: got %x, %v; want %x", tt.name, got.Leaf.SerialNumber, err, tt.want.x.SerialNumber)
		}
	}
}

func TestCertsReloadKeepsOldOnBrokenChain(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	dir := t.TempDir()
	cf, kf := writePair(t, dir, "cert.pem", "key.pem", p.leaf.key, p.leaf, p.inter)
	var logs bytes.Buffer
	opts := Options{
		Pairs:  []Pair{{cf, kf}},
		Check:  CheckOptions{Roots: p.roots, Hostnames: []string{"mail.example.com"}},
		Now:    (&clock{testNow}).Now,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	}
	certs, err := OpenCerts(opts)
	if err != nil {
		t.Fatal(err)
	}
	// The new leaf comes without its intermediate.
	next := p.issue(t, certSpec{cn: "mail.example.com", names: []string{"mail.example.com"}})
	writePair(t, dir, "cert.pem", "key.pem", next.key, next)
	err = certs.Reload()
	var ce *ChainError
	if !errors.As(err, &ce) || ce.Problems[0].Kind != ProblemMissingIntermediate || !strings.Contains(err.Error(), cf) {
		t.Fatalf("reload: %v", err)
	}
	if certs.Leaf().SerialNumber.Cmp(p.leaf.x.SerialNumber) != 0 {
		t.Fatal("the broken certificate replaced the old one")
	}
	// A start with it is refused ...
	if _, err := OpenCerts(opts); !errors.As(err, &ce) {
		t.Fatalf("open: %v", err)
	}
	// ... unless --allow-broken-chain, which logs at ERROR.
	opts.AllowBrokenChain = true
	c2, err := OpenCerts(opts)
	if err != nil {
		t.Fatal(err)
	}
	if c2.Leaf().SerialNumber.Cmp(next.x.SerialNumber) != 0 || !strings.Contains(logs.String(), "level=ERROR msg=\"BROKEN CERTIFICATE SERVED") {
		t.Fatalf("allow-broken: leaf %x, logs %s", c2.Leaf().SerialNumber, logs.String())
	}
	// Fixed files are taken.
	writePair(t, dir, "cert.pem", "key.pem", next.key, next, p.inter)
	if err := certs.Reload(); err != nil || certs.Leaf().SerialNumber.Cmp(next.x.SerialNumber) != 0 {
		t.Fatalf("reload of the fixed chain: %v", err)
	}
}

func TestCertsSet(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	dir := t.TempDir()
	cf, kf := writePair(t, dir, "cert.pem", "key.pem", p.leaf.key, p.leaf, p.inter)
	certs, err := OpenCerts(Options{Pairs: []Pair{{cf, kf}}, Check: CheckOptions{Roots: p.roots}, Now: (&clock{testNow}).Now})
	if err != nil {
		t.Fatal(err)
	}
	acme := p.issue(t, certSpec{cn: "other.example.net", names: []string{"other.example.net"}})
	c := tlsCert(acme.key, acme, p.inter)
	c.Leaf = nil
	if err := certs.Set("acme:other.example.net", c); err != nil {
		t.Fatal(err)
	}
	got, _ := certs.GetCertificate(&tls.ClientHelloInfo{ServerName: "other.example.net"})
	if got.Leaf.SerialNumber.Cmp(acme.x.SerialNumber) != 0 {
		t.Fatal("Set certificate not served by SNI")
	}
	if l := certs.LeafFor("other.example.net"); l == nil || l.SerialNumber.Cmp(acme.x.SerialNumber) != 0 {
		t.Fatalf("LeafFor the Set certificate: %v", l)
	}
	if l := certs.LeafFor("mail.example.com"); l == nil || l.SerialNumber.Cmp(p.leaf.x.SerialNumber) != 0 {
		t.Fatalf("LeafFor the file's certificate: %v", l)
	}
	// A broken one is refused, and the previous stays.
	broken := p.issue(t, certSpec{cn: "other.example.net", names: []string{"other.example.net"}})
	var ce *ChainError
	if err := certs.Set("acme:other.example.net", tlsCert(broken.key, broken)); !errors.As(err, &ce) {
		t.Fatalf("set broken: %v", err)
	}
	got, _ = certs.GetCertificate(&tls.ClientHelloInfo{ServerName: "other.example.net"})
	if got.Leaf.SerialNumber.Cmp(acme.x.SerialNumber) != 0 {
		t.Fatal("broken Set replaced the good one")
	}
	if len(certs.Certificates()) != 2 {
		t.Fatalf("certificates: %v", certs.Certificates())
	}
	certs.Remove("acme:other.example.net")
	if len(certs.Certificates()) != 1 {
		t.Fatal("Remove")
	}
}

func TestExpiryWarningsAndGauge(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	dir := t.TempDir()
	leaf := p.issue(t, certSpec{cn: "mail.example.com", names: []string{"mail.example.com"}, to: testNow.Add(40 * 24 * time.Hour), serial: 0xbeef})
	cf, kf := writePair(t, dir, "cert.pem", "key.pem", leaf.key, leaf, p.inter)
	clk := &clock{testNow}
	var logs bytes.Buffer
	met := NewMetrics(nil)
	certs, err := OpenCerts(Options{Pairs: []Pair{{cf, kf}}, Check: CheckOptions{Roots: p.roots}, Now: clk.Now,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)), Metrics: met})
	if err != nil {
		t.Fatal(err)
	}
	gauge := func() float64 {
		var m dto.Metric
		if err := met.CertificateExpiry.WithLabelValues(cf, "beef").Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetGauge().GetValue()
	}
	notAfter := float64(testNow.Add(40 * 24 * time.Hour).Unix()) // a timestamp: alerts subtract time()
	if g := gauge(); g != notAfter {
		t.Errorf("gauge %v, want %v", g, notAfter)
	}
	count := func() int { return strings.Count(logs.String(), "TLS certificate expires soon") }
	if count() != 0 {
		t.Fatalf("early warning: %s", logs.String())
	}
	step := func(days int, want int, th string) {
		t.Helper()
		clk.t = testNow.Add(time.Duration(days) * 24 * time.Hour)
		certs.CheckExpiry()
		if count() != want {
			t.Fatalf("day %d: %d warnings, want %d: %s", days, count(), want, logs.String())
		}
		if th != "" && !strings.Contains(logs.String(), "threshold_days="+th) {
			t.Fatalf("day %d: no %s-day warning: %s", days, th, logs.String())
		}
	}
	step(9, 0, "")
	step(10, 1, "30") // 30 days left
	step(11, 1, "")   // once only
	certs.Reload()
	step(20, 1, "") // a reload of the same certificate does not repeat it
	step(33, 2, "7")
	step(39, 2, "")
	if g := gauge(); g != notAfter {
		t.Errorf("gauge %v, want %v, whatever the time", g, notAfter)
	}
	if !strings.Contains(logs.String(), "level=WARN") {
		t.Error("not at WARN level")
	}
	// A renewed certificate drops the old label.
	next := p.issue(t, certSpec{cn: "mail.example.com", names: []string{"mail.example.com"}, to: clk.t.Add(90 * 24 * time.Hour), serial: 0xcafe})
	writePair(t, dir, "cert.pem", "key.pem", next.key, next, p.inter)
	if err := certs.Reload(); err != nil {
		t.Fatal(err)
	}
	ch := make(chan prometheus.Metric, 100)
	met.CertificateExpiry.Collect(ch)
	close(ch)
	n := 0
	for m := range ch {
		var d dto.Metric
		m.Write(&d)
		for _, l := range d.GetLabel() {
			if l.GetName() == "name" && l.GetValue() == cf {
				n++
			}
		}
	}
	if n != 1 {
		t.Errorf("%d series after renewal", n)
	}
	_ = x509.NewCertPool
}
