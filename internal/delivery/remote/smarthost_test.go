package remote

import (
	"crypto/x509"
	"strings"
	"testing"

	"postern/internal/delivery/policy"
)

// smarthostFixture returns a fixture relaying through a fake smarthost
// "relay.test:PORT" whose certificate is trusted.
func smarthostFixture(t *testing.T, implicit bool, ext []string, setup func(*fakeServer)) (*fixture, *fakeServer) {
	t.Helper()
	cert, x := testCert("relay.test")
	s := newFake(t, "127.0.0.4", func(s *fakeServer) {
		s.TLS = serverTLS(cert)
		s.ImplicitTLS = implicit
		s.Ext = ext
		s.Users = map[string]string{"user": "secret"}
		if setup != nil {
			setup(s)
		}
	})
	f := newFixture(t, nil)
	f.d.Planner = nil
	port := "587"
	if implicit {
		port = "465"
	}
	f.dialer.m["relay.test:"+port] = s.Addr
	f.roots.AddCert(x)
	f.d.Smarthost = &Smarthost{Address: "relay.test:" + port, ImplicitTLS: implicit, Username: "user", Password: "secret"}
	return f, s
}

func TestSmarthost(t *testing.T) {
	for _, c := range []struct {
		name     string
		implicit bool
		ext      []string
		auth     string
	}{
		{"587 plain", false, []string{"STARTTLS", "AUTH PLAIN LOGIN"}, "PLAIN user"},
		{"587 login only", false, []string{"STARTTLS", "AUTH LOGIN"}, "LOGIN user"},
		{"465 plain", true, []string{"AUTH PLAIN"}, "PLAIN user"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, s := smarthostFixture(t, c.implicit, c.ext, nil)
			res := f.one(t, testMsg("b@example.test", "c@elsewhere.test"))
			delivered(t, res)
			if res[0].TLS != "smarthost" || res[0].Host != "relay.test" {
				t.Errorf("result %+v", res[0])
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			if len(s.auths) != 1 || s.auths[0] != c.auth || s.tlsN != 1 || len(s.msgs) != 1 {
				t.Errorf("auths %q tls %d msgs %d", s.auths, s.tlsN, len(s.msgs))
			}
		})
	}
}

func TestSmarthostFailures(t *testing.T) {
	wrongCert, _ := testCert("other.test")
	for _, c := range []struct {
		name     string
		implicit bool
		ext      []string
		setup    func(*fakeServer)
		password string
		want     string
	}{
		{"no starttls", false, []string{"AUTH PLAIN"}, nil, "secret", "requires STARTTLS"},
		{"bad password", false, []string{"STARTTLS", "AUTH PLAIN"}, nil, "wrong", "535"},
		{"no mechanism", false, []string{"STARTTLS", "AUTH CRAM-MD5"}, nil, "secret", "no usable AUTH"},
		{"wrong cert 587", false, []string{"STARTTLS", "AUTH PLAIN"},
			func(s *fakeServer) { s.TLS = serverTLS(wrongCert) }, "secret", "certificate"},
		{"wrong cert 465", true, []string{"AUTH PLAIN"},
			func(s *fakeServer) { s.TLS = serverTLS(wrongCert) }, "secret", "certificate"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, s := smarthostFixture(t, c.implicit, c.ext, c.setup)
			f.d.Smarthost.Password = c.password
			failed(t, f.one(t, testMsg("b@example.test")), false, c.want)
			s.mu.Lock()
			defer s.mu.Unlock()
			if len(s.msgs) != 0 {
				t.Errorf("message relayed")
			}
			for _, a := range s.auths {
				if c.name == "no starttls" || strings.HasPrefix(c.name, "wrong cert") {
					t.Errorf("credentials sent: %q", a)
				}
			}
		})
	}
}

func TestSmarthostDomains(t *testing.T) {
	f, relay := smarthostFixture(t, false, []string{"STARTTLS", "AUTH PLAIN"}, nil)
	direct := newFake(t, "127.0.0.2", nil)
	f.dialer.m["127.0.0.2:25"] = direct.Addr
	f.d.Planner = fixedPlanner{plan: &policy.Plan{Hosts: []policy.Host{mx("mx.example.test", policy.Opportunistic, direct)}}}
	f.d.Smarthost.Domains = []string{"Relayed.TEST"}
	delivered(t, f.one(t, testMsg("b@relayed.test")))
	delivered(t, f.one(t, testMsg("b@example.test")))
	_, _, _, viaRelay := relay.stats()
	_, _, _, viaMX := direct.stats()
	if len(viaRelay) != 1 || len(viaMX) != 1 || viaRelay[0].Rcpts[0] != "TO:<b@relayed.test>" {
		t.Errorf("relay %+v, direct %+v", viaRelay, viaMX)
	}
}

// TestSmarthostRootCAs: Smarthost.RootCAs (smarthost.ca_file) decides
// which roots the relay's certificate must chain to.
func TestSmarthostRootCAs(t *testing.T) {
	for _, trusted := range []bool{true, false} {
		f, s := smarthostFixture(t, false, []string{"STARTTLS", "AUTH PLAIN"}, nil)
		f.d.TLSClientConfig.RootCAs = x509.NewCertPool() // the base config trusts nothing
		if trusted {
			f.d.Smarthost.RootCAs = f.roots // which holds the relay's certificate
		}
		res := f.one(t, testMsg("b@example.test"))
		if trusted {
			delivered(t, res)
		} else {
			failed(t, res, false, "certificate signed by unknown authority")
		}
		if _, _, _, msgs := s.stats(); len(msgs) != map[bool]int{true: 1, false: 0}[trusted] {
			t.Errorf("trusted %v: server got %d messages", trusted, len(msgs))
		}
	}
}
