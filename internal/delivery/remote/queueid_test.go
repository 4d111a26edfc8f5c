package remote

import (
	"strings"
	"testing"
	"time"

	"postern/internal/delivery/policy"
)

func TestRemoteQueueID(t *testing.T) {
	for _, c := range []struct{ text, want string }{
		{"Ok: queued as 4Fq1x72Wdvz9v", "4Fq1x72Wdvz9v"},
		{"OK queued as 0ujr5ud8tqv9u3lbpi6g", "0ujr5ud8tqv9u3lbpi6g"},
		{"OK id=1qZ3Ab-0004Xy-Q2", "1qZ3Ab-0004Xy-Q2"},
		{"<m@example.net> [InternalId=12345678, Hostname=EX01] Queued mail for delivery", "12345678"},
		{"x7GAbcde012345 Message accepted for delivery", "x7GAbcde012345"},
		{"OK  1700000000 a1si123456plj.123 - gsmtp", "a1si123456plj.123"},
		{"ok 1700000000 qp 12345", "12345"},
		{"Ok: queued as 4Fq1x72Wdvz9v.", "4Fq1x72Wdvz9v"},
		{"queued", ""},
		{"Ok", ""},
		{"Ok: queued as ", ""},
		{"userid=7 accepted", ""}, // "id=" inside a word is not an id
		{"Ok: queued as " + strings.Repeat("a", 65), ""},
		{"Ok: queued as a\x00b\r\nRCPT", "a"},
	} {
		if got := RemoteQueueID(c.text); got != c.want {
			t.Errorf("RemoteQueueID(%q) = %q, want %q", c.text, got, c.want)
		}
	}
}

// FuzzRemoteQueueID checks that whatever a server says, the id found is
// a short run of id characters taken from its text.
func FuzzRemoteQueueID(f *testing.F) {
	for _, s := range []string{"Ok: queued as ABC", "OK id=1-2-3", "a Message accepted for delivery",
		"OK 1 x - gsmtp", "ok 1 qp 2", "[InternalId=9]", "id=", "queued as <x>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		id := RemoteQueueID(text)
		if len(id) > maxRemoteID || !strings.Contains(text, id) {
			t.Fatalf("RemoteQueueID(%q) = %q", text, id)
		}
		for i := 0; i < len(id); i++ {
			if !isIDChar(id[i]) {
				t.Fatalf("RemoteQueueID(%q) = %q: byte %q", text, id, id[i])
			}
		}
	})
}

// TestResultSession checks what a Result tells of its session: the
// address, TLS version, cipher and verification, the two delays and the
// final reply with the remote queue id; and, for a host that refuses the
// session, the address and connection delay alone.
func TestResultSession(t *testing.T) {
	cert, _ := testCert("mx.example.test")
	s := newFake(t, "127.0.0.2", func(s *fakeServer) {
		s.Ext = []string{"STARTTLS"}
		s.TLS = serverTLS(cert)
		s.Reply = func(cmd string) string {
			if cmd == "." {
				return "250 2.0.0 Ok: queued as 4Fq1x72Wdvz9v"
			}
			return ""
		}
	})
	f := newFixture(t, []policy.Host{mx("mx.example.test", policy.Encrypt, s)}, s)
	var tick time.Duration
	f.d.Now = func() time.Time { tick += time.Second; return time.Unix(1e9, 0).Add(tick) }
	res := f.one(t, testMsg("b@example.test"))
	delivered(t, res)
	ss := res[0].Session
	if ss.Addr != "127.0.0.2:25" || ss.TLSVersion != "TLS 1.3" || ss.TLSCipher == "" || ss.Verification != "encrypted" {
		t.Errorf("session %+v: want 127.0.0.2:25, TLS 1.3, a cipher, encrypted", ss)
	}
	if ss.Reply != "250 2.0.0 Ok: queued as 4Fq1x72Wdvz9v" || ss.RemoteID != "4Fq1x72Wdvz9v" {
		t.Errorf("reply %q, id %q", ss.Reply, ss.RemoteID)
	}
	if ss.Connect <= 0 || ss.Transmit <= 0 {
		t.Errorf("connect %v, transmit %v: want both above 0", ss.Connect, ss.Transmit)
	}

	bad := newFake(t, "127.0.0.3", func(s *fakeServer) { s.Greeting = "554 go away" })
	f = newFixture(t, []policy.Host{mx("mx.example.test", policy.Opportunistic, bad)}, bad)
	res = f.one(t, testMsg("b@example.test"))
	if ss := res[0].Session; ss.Addr != "127.0.0.3:25" || ss.Verification != "" || ss.Reply != "" {
		t.Errorf("refused session: %+v", ss)
	}
}
