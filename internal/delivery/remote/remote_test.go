package remote

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"postern/internal/delivery/policy"
	"postern/internal/dns"
	"postern/internal/smtp"
)

// one delivers msg and requires one Result per recipient.
func (f *fixture) one(t *testing.T, msg *Message) []Result {
	t.Helper()
	res := f.d.Deliver(context.Background(), msg)
	if len(res) != len(msg.Rcpts) {
		t.Fatalf("got %d results for %d recipients", len(res), len(msg.Rcpts))
	}
	return res
}

// delivered fails the test unless every result is a delivery.
func delivered(t *testing.T, res []Result) {
	t.Helper()
	for _, r := range res {
		if !r.Delivered || r.Err != nil {
			t.Fatalf("%s not delivered: %+v", r.Rcpt, r)
		}
	}
}

// failed fails the test unless every result is a failure with the given
// permanence whose error mentions want.
func failed(t *testing.T, res []Result, permanent bool, want string) {
	t.Helper()
	for _, r := range res {
		if r.Delivered || r.Err == nil || r.Permanent != permanent {
			t.Fatalf("%s: want failure (permanent %v), got %+v", r.Rcpt, permanent, r)
		}
		if !strings.Contains(r.Err.Error(), want) && !strings.Contains(r.Text, want) {
			t.Fatalf("%s: error %q, text %q, want %q", r.Rcpt, r.Err, r.Text, want)
		}
	}
}

func TestDeliverBytesExact(t *testing.T) {
	s := newFake(t, "127.0.0.2", nil)
	f := newFixture(t, []policy.Host{mx("mx.example.test", policy.Opportunistic, s)}, s)
	msg := testMsg("b@example.test")
	res := f.one(t, msg)
	delivered(t, res)
	if r := res[0]; r.Code != 250 || r.Enhanced != "2.0.0" || r.Text != "queued" || r.TLS != "plain" || r.Host != "mx.example.test" {
		t.Errorf("result %+v", r)
	}
	_, _, _, msgs := s.stats()
	if len(msgs) != 1 {
		t.Fatalf("server got %d messages", len(msgs))
	}
	if !bytes.Equal(msgs[0].Data, msg.Data.Header) {
		t.Errorf("data %q, want %q", msgs[0].Data, msg.Data.Header)
	}
	if want := "Subject: hi\r\n\r\nhello\r\n..dot line\r\n...two\r\n.\r\n"; string(msgs[0].Raw) != want {
		t.Errorf("wire %q, want %q", msgs[0].Raw, want)
	}
	if msgs[0].Mail != "MAIL FROM:<a@src.test>" || len(msgs[0].Rcpts) != 1 || msgs[0].Rcpts[0] != "TO:<b@example.test>" {
		t.Errorf("envelope %+v", msgs[0])
	}
	if s.helo[0] != "EHLO out.postern.test" {
		t.Errorf("hello %q", s.helo)
	}
}

func TestReplies(t *testing.T) {
	for _, c := range []struct {
		at, reply string
		permanent bool
	}{
		{"GREETING", "421 4.3.2 busy", false},
		{"GREETING", "554 5.7.1 go away", true},
		{"EHLO", "421 4.3.2 closing", false},
		{"MAIL", "451 4.3.0 try later", false},
		{"MAIL", "550 5.7.1 sender refused", true},
		{"RCPT", "450 4.2.1 greylisted", false},
		{"RCPT", "550 5.1.1 no such user", true},
		{"DATA", "451 4.3.0 no data now", false},
		{"DATA", "554 5.5.1 no valid recipients", true},
		{".", "452 4.3.1 disk full", false},
		{".", "552 5.3.4 too big", true},
	} {
		t.Run(c.at+" "+c.reply[:3], func(t *testing.T) {
			s := newFake(t, "127.0.0.2", func(s *fakeServer) {
				s.Reply = func(cmd string) string {
					if strings.HasPrefix(cmd, c.at) {
						return c.reply
					}
					return ""
				}
			})
			f := newFixture(t, []policy.Host{mx("mx.example.test", policy.Opportunistic, s)}, s)
			res := f.one(t, testMsg("b@example.test", "c@example.test"))
			// A greeting 5xx is a host failure (try the next host), hence
			// temporary when no other host is left.
			perm := c.permanent && c.at != "GREETING"
			failed(t, res, perm, c.reply[8:])
			if _, _, _, msgs := s.stats(); len(msgs) != 0 {
				t.Errorf("server stored %d messages", len(msgs))
			}
			code := 0
			fmt.Sscan(c.reply[:3], &code)
			if res[0].Code != code || res[0].Enhanced != c.reply[4:9] {
				t.Errorf("code %d %q, want %s", res[0].Code, res[0].Enhanced, c.reply[:9])
			}
		})
	}
}

func TestMixedRecipients(t *testing.T) {
	s := newFake(t, "127.0.0.2", func(s *fakeServer) {
		s.Ext = []string{"PIPELINING"}
		s.Reply = func(cmd string) string {
			switch {
			case strings.Contains(cmd, "<gone@"):
				return "550 5.1.1 gone"
			case strings.Contains(cmd, "<later@"):
				return "452 4.2.2 mailbox full"
			}
			return ""
		}
	})
	f := newFixture(t, []policy.Host{mx("mx.example.test", policy.Opportunistic, s)}, s)
	res := f.one(t, testMsg("ok@example.test", "gone@example.test", "later@example.test", "ok2@example.test"))
	delivered(t, []Result{res[0], res[3]})
	failed(t, res[1:2], true, "gone")
	failed(t, res[2:3], false, "mailbox full")
	_, _, _, msgs := s.stats()
	if len(msgs) != 1 || len(msgs[0].Rcpts) != 2 {
		t.Fatalf("server messages %+v", msgs)
	}
}

func TestNoRecipientAcceptedSkipsData(t *testing.T) {
	s := newFake(t, "127.0.0.2", func(s *fakeServer) {
		s.Reply = func(cmd string) string {
			if strings.HasPrefix(cmd, "RCPT") {
				return "550 5.1.1 no"
			}
			if strings.HasPrefix(cmd, "DATA") {
				t.Error("DATA sent with no recipient accepted")
			}
			return ""
		}
	})
	f := newFixture(t, []policy.Host{mx("mx.example.test", policy.Opportunistic, s)}, s)
	failed(t, f.one(t, testMsg("x@example.test")), true, "no")
	// The session was RSET and pooled; a second message reuses it.
	failed(t, f.one(t, testMsg("y@example.test")), true, "no")
	// RSET after each refused transaction, and one before reuse.
	if conns, rsets, _, _ := s.stats(); conns != 1 || rsets != 3 {
		t.Errorf("conns %d rsets %d, want 1 and 3", conns, rsets)
	}
}

func TestHang(t *testing.T) {
	for _, at := range []string{"GREETING", "MAIL", "DATA", "."} {
		t.Run(at, func(t *testing.T) {
			s := newFake(t, "127.0.0.2", func(s *fakeServer) {
				s.Reply = func(cmd string) string {
					if strings.HasPrefix(cmd, at) {
						return "HANG"
					}
					return ""
				}
			})
			f := newFixture(t, []policy.Host{mx("mx.example.test", policy.Opportunistic, s)}, s)
			f.d.Timeouts = Timeouts{Greeting: 200 * time.Millisecond, Command: 200 * time.Millisecond,
				DataStart: 200 * time.Millisecond, DataEnd: 200 * time.Millisecond}
			start := time.Now()
			failed(t, f.one(t, testMsg("b@example.test")), false, "timeout")
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}

func TestContextCancel(t *testing.T) {
	s := newFake(t, "127.0.0.2", func(s *fakeServer) {
		s.Reply = func(cmd string) string {
			if cmd == "." {
				return "HANG"
			}
			return ""
		}
	})
	f := newFixture(t, []policy.Host{mx("mx.example.test", policy.Opportunistic, s)}, s)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	start := time.Now()
	res := f.d.Deliver(ctx, testMsg("b@example.test"))
	if res[0].Delivered || res[0].Permanent || time.Since(start) > time.Second {
		t.Errorf("result %+v after %v", res[0], time.Since(start))
	}
}

func TestDropMidData(t *testing.T) {
	s := newFake(t, "127.0.0.2", func(s *fakeServer) {
		s.Reply = func(cmd string) string {
			if cmd == "DATA " {
				return "DROPDATA"
			}
			return ""
		}
	})
	f := newFixture(t, []policy.Host{mx("mx.example.test", policy.Opportunistic, s)}, s)
	msg := testMsg("b@example.test", "c@example.test")
	msg.Data = &smtp.Message{Header: bytes.Repeat([]byte("0123456789012345678901234567890123456789\r\n"), 20000)}
	failed(t, f.one(t, msg), false, "session lost")
}

func TestSecondHost(t *testing.T) {
	bad := newFake(t, "127.0.0.2", func(s *fakeServer) {
		s.Reply = func(cmd string) string {
			if cmd == "GREETING" {
				return "421 4.3.2 busy"
			}
			return ""
		}
	})
	good := newFake(t, "127.0.0.3", nil)
	// down refuses connections: a listener closed at once.
	ln, err := net.Listen("tcp", "127.0.0.9:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	down := policy.Host{Name: "down.example.test", Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.9")}}
	hosts := []policy.Host{down, mx("mx1.example.test", policy.Opportunistic, bad), mx("mx2.example.test", policy.Opportunistic, good)}
	f := newFixture(t, hosts, bad, good)
	f.dialer.m["127.0.0.9:25"] = ln.Addr().String()
	res := f.one(t, testMsg("b@example.test"))
	delivered(t, res)
	if res[0].Host != "mx2.example.test" {
		t.Errorf("host %q", res[0].Host)
	}
	if f.dialer.dials != 3 {
		t.Errorf("dials %d, want 3", f.dialer.dials)
	}
	if logs := f.logs.String(); strings.Count(logs, "remote delivery attempt") != 3 {
		t.Errorf("want 3 attempt events, logs:\n%s", logs)
	}
}

func TestHELOFallback(t *testing.T) {
	s := newFake(t, "127.0.0.2", func(s *fakeServer) {
		s.Reply = func(cmd string) string {
			if strings.HasPrefix(cmd, "EHLO") {
				return "502 5.5.1 what"
			}
			return ""
		}
	})
	f := newFixture(t, []policy.Host{mx("mx.example.test", policy.Opportunistic, s)}, s)
	delivered(t, f.one(t, testMsg("b@example.test")))
}

func TestPlanErrors(t *testing.T) {
	for _, c := range []struct {
		err       error
		permanent bool
		enh       string
	}{
		{fmt.Errorf("x: %w", policy.ErrNullMX), true, "5.1.10"},
		{errors.New("dns servfail"), false, "4.4.3"},
		{fmt.Errorf("x: %w: %w", policy.ErrNoHosts, dns.ErrNXDomain), true, "5.1.2"},
		{fmt.Errorf("x: %w: %w", policy.ErrNoHosts, dns.ErrTemporary), false, "4.4.4"},
		{fmt.Errorf("x: %w", policy.ErrRequireTLS), false, "4.7.10"},
	} {
		f := newFixture(t, nil)
		f.d.Planner = fixedPlanner{err: c.err}
		res := f.one(t, testMsg("b@example.test"))
		if res[0].Delivered || res[0].Permanent != c.permanent || res[0].Enhanced != c.enh {
			t.Errorf("%v: %+v", c.err, res[0])
		}
	}
	f := newFixture(t, []policy.Host{})
	failed(t, f.one(t, testMsg("b@example.test")), false, "no host")
}

func TestLogEvent(t *testing.T) {
	s := newFake(t, "127.0.0.2", nil)
	h := mx("mx.example.test", policy.Opportunistic, s)
	h.Source = policy.SourceConfig
	f := newFixture(t, []policy.Host{h}, s)
	delivered(t, f.one(t, testMsg("b@example.test")))
	logs := f.logs.String()
	for _, want := range []string{"id=Q1", "domain=example.test", "host=mx.example.test", "addr=127.0.0.2:25",
		"policy=config", "tls=none", "code=250", `reply="250 2.0.0 queued"`, "duration=", "outcome=done"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
}

// certVerifier checks the peer chain against roots for the host name, as
// policy's WebPKI verification does.
func certVerifier(roots *x509.CertPool) func(h *policy.Host, cs tls.ConnectionState) error {
	return func(h *policy.Host, cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("no certificate")
		}
		_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{DNSName: h.Name, Roots: roots})
		return err
	}
}

func TestSTARTTLS(t *testing.T) {
	good, goodX := testCert("mx.example.test")
	wrong, _ := testCert("other.test")
	for _, c := range []struct {
		name    string
		cert    *tls.Certificate // nil: no STARTTLS offered
		mode    policy.Mode
		src     policy.Source
		ok      bool
		tls     string
		errText string
	}{
		{"no starttls opportunistic", nil, policy.Opportunistic, policy.SourceNone, true, "plain", ""},
		{"no starttls encrypt", nil, policy.Encrypt, policy.SourceConfig, false, "", "requires STARTTLS"},
		{"no starttls verify", nil, policy.Verify, policy.SourceMTASTS, false, "", "requires STARTTLS"},
		{"wrong cert opportunistic", &wrong, policy.Opportunistic, policy.SourceNone, true, "starttls", ""},
		{"wrong cert encrypt", &wrong, policy.Encrypt, policy.SourceConfig, true, "starttls", ""},
		{"wrong cert verify", &wrong, policy.Verify, policy.SourceMTASTS, false, "", "TLS verification"},
		{"good cert verify mta-sts", &good, policy.Verify, policy.SourceMTASTS, true, "mta-sts", ""},
		{"good cert verify dane", &good, policy.Verify, policy.SourceDANE, true, "dane", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newFake(t, "127.0.0.2", func(s *fakeServer) {
				if c.cert != nil {
					s.Ext = []string{"STARTTLS"}
					s.TLS = serverTLS(*c.cert)
				}
			})
			h := mx("mx.example.test", c.mode, s)
			h.Source, h.Reason = c.src, "test policy "+string(c.src)
			f := newFixture(t, []policy.Host{h}, s)
			f.roots.AddCert(goodX)
			f.d.VerifyTLS = certVerifier(f.roots)
			msg := testMsg("b@example.test")
			res := f.one(t, msg)
			_, _, _, msgs := s.stats()
			if !c.ok {
				failed(t, res, false, c.errText)
				if len(msgs) != 0 {
					t.Errorf("server got the message")
				}
				return
			}
			delivered(t, res)
			if res[0].TLS != c.tls {
				t.Errorf("TLS %q, want %q", res[0].TLS, c.tls)
			}
			if c.cert != nil && len(s.helo) != 2 {
				t.Errorf("want EHLO before and after STARTTLS, got %q", s.helo)
			}
			if logs := f.logs.String(); c.cert != nil && !strings.Contains(logs, `tls="TLS 1.3" tls_mode=`+c.tls) {
				t.Errorf("log lacks the TLS version and mode:\n%s", logs)
			}
		})
	}
}

func TestSTARTTLSInjection(t *testing.T) {
	cert, _ := testCert("mx.example.test")
	s := newFake(t, "127.0.0.2", func(s *fakeServer) {
		s.Ext = []string{"STARTTLS"}
		s.TLS = serverTLS(cert)
		s.Inject = true
	})
	f := newFixture(t, []policy.Host{mx("mx.example.test", policy.Opportunistic, s)}, s)
	failed(t, f.one(t, testMsg("b@example.test")), false, "injection")
	if _, _, _, msgs := s.stats(); len(msgs) != 0 {
		t.Errorf("message sent after an injected reply")
	}
}

func TestTLSResumption(t *testing.T) {
	cert, _ := testCert("mx.example.test")
	s := newFake(t, "127.0.0.2", func(s *fakeServer) {
		s.Ext = []string{"STARTTLS"}
		s.TLS = serverTLS(cert)
	})
	f := newFixture(t, []policy.Host{mx("mx.example.test", policy.Opportunistic, s)}, s)
	f.d.Pool.MaxMessagesPerConn = 1
	for range 2 {
		delivered(t, f.one(t, testMsg("b@example.test")))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns != 2 || s.tlsN != 2 || s.resumed != 1 {
		t.Errorf("conns %d tls %d resumed %d, want 2 2 1", s.conns, s.tlsN, s.resumed)
	}
}

func TestExtensions(t *testing.T) {
	for _, c := range []struct {
		name    string
		ext     []string
		mod     func(*Message)
		enh     string
		mailArg string // expected in MAIL when delivered
	}{
		{"size too big", []string{"SIZE 20"}, nil, "5.3.4", ""},
		{"size ok", []string{"SIZE 1000"}, nil, "", " SIZE=40"},
		{"size no limit", []string{"SIZE"}, nil, "", " SIZE=40"},
		{"8bit refused", nil, func(m *Message) { m.EightBit = true }, "5.6.3", ""},
		{"8bit", []string{"8BITMIME"}, func(m *Message) { m.EightBit = true }, "", " BODY=8BITMIME"},
		{"smtputf8 refused", []string{"8BITMIME"}, func(m *Message) { m.SMTPUTF8 = true }, "5.6.7", ""},
		{"smtputf8", []string{"SMTPUTF8"}, func(m *Message) { m.SMTPUTF8 = true }, "", " SMTPUTF8"},
		{"requiretls refused", nil, func(m *Message) { m.RequireTLS = true }, "5.7.30", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newFake(t, "127.0.0.2", func(s *fakeServer) { s.Ext = c.ext })
			f := newFixture(t, []policy.Host{mx("mx.example.test", policy.Opportunistic, s)}, s)
			msg := testMsg("b@example.test")
			if c.mod != nil {
				c.mod(msg)
			}
			res := f.one(t, msg)
			_, _, _, msgs := s.stats()
			if c.enh != "" {
				failed(t, res, true, "next hop")
				if res[0].Enhanced != c.enh || len(msgs) != 0 {
					t.Errorf("enhanced %q (want %s), server messages %d", res[0].Enhanced, c.enh, len(msgs))
				}
				return
			}
			delivered(t, res)
			if want := "MAIL FROM:<a@src.test>" + c.mailArg; msgs[0].Mail != want {
				t.Errorf("MAIL %q, want %q", msgs[0].Mail, want)
			}
		})
	}
}

func TestPipelining(t *testing.T) {
	for _, pipe := range []bool{true, false} {
		s := newFake(t, "127.0.0.2", func(s *fakeServer) {
			if pipe {
				s.Ext = []string{"PIPELINING"}
			}
		})
		f := newFixture(t, []policy.Host{mx("mx.example.test", policy.Opportunistic, s)}, s)
		delivered(t, f.one(t, testMsg("a@example.test", "b@example.test", "c@example.test")))
		want := 1
		if pipe {
			want = 4
		}
		if s.batches[0] != want {
			t.Errorf("pipelining %v: MAIL arrived with %d commands, want %d", pipe, s.batches[0], want)
		}
	}
}

func TestPipelinedMailRefused(t *testing.T) {
	s := newFake(t, "127.0.0.2", func(s *fakeServer) {
		s.Ext = []string{"PIPELINING"}
		s.Reply = func(cmd string) string {
			switch {
			case strings.HasPrefix(cmd, "MAIL"):
				return "550 5.7.1 no"
			case strings.HasPrefix(cmd, "RCPT"):
				return "503 5.5.1 need MAIL"
			}
			return ""
		}
	})
	f := newFixture(t, []policy.Host{mx("mx.example.test", policy.Opportunistic, s)}, s)
	res := f.one(t, testMsg("a@example.test", "b@example.test"))
	failed(t, res, true, "MAIL FROM")
	if res[1].Code != 550 {
		t.Errorf("result %+v", res[1])
	}
}

func TestConcurrentDeliveries(t *testing.T) {
	s := newFake(t, "127.0.0.2", func(s *fakeServer) { s.Ext = []string{"PIPELINING"} })
	f := newFixture(t, []policy.Host{mx("mx.example.test", policy.Opportunistic, s)}, s)
	f.d.Pool.MaxIdlePerHost = 10 // no session is ended, so at most 10 are made
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			delivered(t, f.d.Deliver(context.Background(), testMsg(fmt.Sprintf("u%d@example.test", i))))
		})
	}
	wg.Wait()
	conns, _, _, msgs := s.stats()
	if len(msgs) != 20 || conns > 10 {
		t.Errorf("messages %d conns %d", len(msgs), conns)
	}
}

func TestBadAddresses(t *testing.T) {
	s := newFake(t, "127.0.0.2", nil)
	f := newFixture(t, []policy.Host{mx("mx.example.test", policy.Opportunistic, s)}, s)
	res := f.one(t, testMsg("ok@example.test", "x@example.test>\r\nRSET", "nodomain"))
	delivered(t, res[:1])
	failed(t, res[1:], true, "bad recipient")
	msg := testMsg("ok@example.test")
	msg.From = "a@b\r\nDATA"
	failed(t, f.one(t, msg), true, "bad sender")
	if _, _, _, msgs := s.stats(); len(msgs) != 1 || len(msgs[0].Rcpts) != 1 {
		t.Errorf("server got %+v", msgs)
	}
}

func TestOpportunisticHandshakeFailureFallsBack(t *testing.T) {
	cert, _ := testCert("mx.example.test")
	for _, mode := range []policy.Mode{policy.Opportunistic, policy.Encrypt} {
		s := newFake(t, "127.0.0.2", func(s *fakeServer) {
			s.Ext = []string{"STARTTLS"}
			// Only TLS 1.0: the client (TLS 1.2 at least) cannot agree.
			s.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MaxVersion: tls.VersionTLS10}
		})
		f := newFixture(t, []policy.Host{mx("mx.example.test", mode, s)}, s)
		res := f.one(t, testMsg("b@example.test"))
		if mode == policy.Encrypt {
			failed(t, res, false, "TLS handshake")
			continue
		}
		delivered(t, res)
		if conns, _, _, _ := s.stats(); res[0].TLS != "plain" || conns != 2 {
			t.Errorf("TLS %q conns %d, want plain over a second connection", res[0].TLS, conns)
		}
	}
}

func TestServerClosing421(t *testing.T) {
	s := newFake(t, "127.0.0.2", func(s *fakeServer) {
		s.Reply = func(cmd string) string {
			if cmd == "." {
				return "421 4.3.2 shutting down"
			}
			return ""
		}
	})
	f := newFixture(t, []policy.Host{mx("mx.example.test", policy.Opportunistic, s)}, s)
	failed(t, f.one(t, testMsg("b@example.test")), false, "shutting down")
	failed(t, f.one(t, testMsg("b@example.test")), false, "shutting down")
	// A session that got 421 is not reused.
	if conns, rsets, _, _ := s.stats(); conns != 2 || rsets != 0 {
		t.Errorf("conns %d rsets %d, want 2 0", conns, rsets)
	}
}

// recordingPlanner records the domains it is asked to plan for.
type recordingPlanner struct {
	mu      sync.Mutex
	domains []string
	plan    *policy.Plan
}

func (p *recordingPlanner) Plan(ctx context.Context, req policy.Request) (*policy.Plan, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.domains = append(p.domains, req.Domain)
	return p.plan, nil
}

// The domain delivery plans for is the recipient domain's addrkey key:
// strings.ToLower made "wor\u212A.test" (a KELVIN SIGN, no valid name)
// into work.test, and delivered there (issue 12 §8); a U-label is
// looked up as its A-label; the smarthost's domains compare the same
// way.
func TestRecipientDomainKey(t *testing.T) {
	s := newFake(t, "127.0.0.2", nil)
	f := newFixture(t, nil, s)
	p := &recordingPlanner{plan: &policy.Plan{Hosts: []policy.Host{mx("mx.example.test", policy.Opportunistic, s)}}}
	f.d.Planner = p
	res := f.one(t, testMsg("bob@wor\u212A.test"))
	if len(res) != 1 || res[0].Delivered || !res[0].Permanent || res[0].Enhanced != "5.1.2" {
		t.Errorf("recipient at wor\\u212A.test: %+v; want a permanent 5.1.2 failure", res)
	}
	delivered(t, f.one(t, testMsg("bob@B\u00fccher.example")))
	if want := []string{"xn--bcher-kva.example"}; !slices.Equal(p.domains, want) {
		t.Errorf("planned for %q, want %q", p.domains, want)
	}
	sh := &Smarthost{Domains: []string{"b\u00fccher.example", "work.test"}}
	if !sh.applies("xn--bcher-kva.example") || sh.applies("wor\u212A.test") || sh.applies("example.test") {
		t.Error("smarthost domains do not compare by addrkey")
	}
}
