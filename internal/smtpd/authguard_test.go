package smtpd

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xdg-go/scram"

	"postern/internal/admission"
	"postern/internal/admission/redisstore"
	"postern/internal/sasl"
	"postern/internal/testkit"
)

// eachGuardStore runs fn on a memory store and, with POSTERN_TEST_REDIS,
// on a Redis store of its own (a failure, not a skip, without it when
// POSTERN_INTEGRATION=1).
func eachGuardStore(t *testing.T, fn func(t *testing.T, store admission.Store)) {
	t.Run("memory", func(t *testing.T) { fn(t, admission.NewMemoryStore()) })
	t.Run("redis", func(t *testing.T) {
		s, err := redisstore.New(redisstore.Options{Addr: testkit.RedisAddr(t),
			Prefix: fmt.Sprintf("postern-test-smtpd-guard:%d:%d:", os.Getpid(), time.Now().UnixNano())})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		fn(t, s)
	})
}

// guessFrom makes n AUTH PLAIN attempts for user with wrong passwords
// from the loopback address src, dialling again when the server closes
// (421: banned or too many errors) and stopping when the address gets
// no TLS handshake any more (banned at accept). It returns how many
// attempts were answered 535 and how many got no session.
func guessFrom(f *fixture, src, user string, n int) (answered, refused int) {
	f.t.Helper()
	var cur *client
	for i := 1; i <= n; i++ {
		if cur == nil {
			c, ok := f.dialAs(src)
			if !ok {
				refused++
				continue
			}
			cur = c
			cur.expect("220 ")
			cur.do("EHLO guesser", "250 ")
		}
		cur.send("AUTH PLAIN " + plainAuth(user, fmt.Sprintf("guess-%d", i)))
		lines, err := cur.readReply()
		if err != nil {
			f.t.Fatalf("attempt %d from %s: %v", i, src, err)
		}
		switch last := lines[len(lines)-1]; {
		case strings.HasPrefix(last, "535 5.7.8"):
			answered++
		case strings.HasPrefix(last, "421 "):
			if strings.Contains(last, "authentication failures") {
				answered++
			}
			cur.expectClosed()
			cur = nil
		default:
			f.t.Fatalf("attempt %d from %s: %q", i, src, lines)
		}
	}
	return answered, refused
}

// TestAuthOneAddressCannotLockOut is issue 12 §3 as it was found: after
// 60 wrong passwords for alice from one address, alice, with her
// password, logs in from addresses that never logged in as her: one in
// the guesser's /24 and one elsewhere.
func TestAuthOneAddressCannotLockOut(t *testing.T) {
	eachGuardStore(t, func(t *testing.T, store admission.Store) {
		g := newGuardedOn(store, admission.GateOptions{}, abuseOptions(nil), admission.LimiterOptions{})
		f := newFixture(t, RoleSubmissions, g.install)
		answered, refused := guessFrom(f, "127.0.0.66", "alice", 60)
		if answered != 10 || refused != 50 {
			t.Fatalf("guesser: %d attempts answered, %d refused at accept; want 10 and 50 (banned at the 10th)", answered, refused)
		}
		for _, a := range []string{"127.0.0.67", "127.0.9.67"} {
			c := f.greetAs(a)
			c.login()
			c.do("QUIT", "221 ")
		}
	})
}

// countingUsers is alice's entry in a user directory, for the real SASL
// mechanisms: her password (PLAIN, LOGIN) and her SCRAM-SHA-256 and
// CRAM-MD5 secrets. It counts every password check and secret lookup.
type countingUsers struct {
	mu     sync.Mutex
	checks int
	scram  sasl.SCRAMCredentials
	cram   sasl.CRAMMD5Secret
}

func newCountingUsers(t *testing.T) *countingUsers {
	sc, err := sasl.NewSCRAMCredentials("alice", testPassword, sasl.HashSHA256, sasl.MinSCRAMIterations, make([]byte, 16))
	if err != nil {
		t.Fatal(err)
	}
	return &countingUsers{scram: sc, cram: sasl.NewCRAMMD5Secret("alice", testPassword)}
}

// count returns the checks and lookups so far.
func (u *countingUsers) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.checks
}

func (u *countingUsers) tick() {
	u.mu.Lock()
	u.checks++
	u.mu.Unlock()
}

func (u *countingUsers) check(_ context.Context, user, pass string) (string, error) {
	u.tick()
	if user == "alice" && pass == testPassword {
		return "alice", nil
	}
	return "", fmt.Errorf("no: %w", sasl.ErrInvalidCredentials)
}

func (u *countingUsers) SCRAM(_ context.Context, user, hash string) (sasl.SCRAMCredentials, error) {
	u.tick()
	if user != "alice" || hash != sasl.HashSHA256 {
		return sasl.SCRAMCredentials{}, fmt.Errorf("no: %w", sasl.ErrInvalidCredentials)
	}
	return u.scram, nil
}

func (u *countingUsers) CRAMMD5(_ context.Context, user string) (sasl.CRAMMD5Secret, error) {
	u.tick()
	if user != "alice" {
		return sasl.CRAMMD5Secret{}, fmt.Errorf("no: %w", sasl.ErrInvalidCredentials)
	}
	return u.cram, nil
}

// mechanisms returns the real SASL mechanisms over u.
func (u *countingUsers) mechanisms() *sasl.Mechanisms {
	return &sasl.Mechanisms{
		Enabled:  []string{sasl.MechPlain, sasl.MechLogin, sasl.MechCRAMMD5, sasl.MechSCRAMSHA256},
		Check:    u.check,
		Secrets:  u,
		Hostname: testHost,
	}
}

// sleepRecorder stands in for the session's waits before AUTH replies:
// it records each delay and returns at once.
type sleepRecorder struct {
	mu     sync.Mutex
	delays []time.Duration
}

func (r *sleepRecorder) sleep(d time.Duration) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.delays = append(r.delays, d)
	return true
}

// take returns the delays recorded since the last take, summed: the
// wait before the reply the client just read.
func (r *sleepRecorder) take() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	var sum time.Duration
	for _, d := range r.delays {
		sum += d
	}
	r.delays = nil
	return sum
}

// authAs runs a whole SASL exchange of mech for user with pass and
// returns the final reply's last line.
func authAs(c *client, mech, user, pass string) string {
	c.t.Helper()
	last := func(r string) string { return r[strings.LastIndex(r, "\n")+1:] }
	next := func(line string) (string, bool) {
		c.send(line)
		lines, err := c.readReply()
		if err != nil {
			c.t.Fatalf("%s: %v", mech, err)
		}
		l := lines[len(lines)-1]
		return l, strings.HasPrefix(l, "334 ")
	}
	switch mech {
	case sasl.MechPlain:
		r, _ := next("AUTH PLAIN " + plainAuth(user, pass))
		return r
	case sasl.MechLogin:
		if r, more := next("AUTH LOGIN"); !more {
			return r
		}
		if r, more := next(b64(user)); !more {
			return r
		}
		r, _ := next(b64(pass))
		return r
	case sasl.MechCRAMMD5:
		r, more := next("AUTH CRAM-MD5")
		if !more {
			return r
		}
		ch, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(r, "334 "))
		if err != nil {
			c.t.Fatal(err)
		}
		m := hmac.New(md5.New, []byte(pass))
		m.Write(ch)
		r, _ = next(b64(user + " " + hex.EncodeToString(m.Sum(nil))))
		return r
	case sasl.MechSCRAMSHA256:
		cl, err := scram.SHA256.NewClient(user, pass, "")
		if err != nil {
			c.t.Fatal(err)
		}
		conv := cl.NewConversation()
		first, _ := conv.Step("")
		r, more := next("AUTH SCRAM-SHA-256 " + b64(first))
		if !more {
			return r
		}
		sf, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(r, "334 "))
		final, err := conv.Step(string(sf))
		if err != nil {
			c.t.Fatal(err)
		}
		if r, more = next(b64(final)); !more {
			return r
		}
		// The server-final message: "v=..." or an "e=..." error; the
		// client's empty answer ends the exchange either way.
		r, _ = next("")
		return last(r)
	}
	c.t.Fatalf("no client for %s", mech)
	return ""
}

// TestAuthThrottledReplyIndependentOfPassword is issue 12 §2: with alice
// under attack, an attempt the guard refuses is answered the same, after
// the same delay, whether its password is right or wrong, and her
// credentials are not checked at all. Each mechanism in which the client
// names the user before proving it (PLAIN, LOGIN, CRAM-MD5, SCRAM) is
// tried. The delays are the session's, taken from an injected sleep
// with a fixed clock; run with -v to see them:
//
//	go test ./internal/smtpd -run TestAuthThrottledReplyIndependentOfPassword -v
func TestAuthThrottledReplyIndependentOfPassword(t *testing.T) {
	eachGuardStore(t, func(t *testing.T, store admission.Store) {
		users := newCountingUsers(t)
		rec := &sleepRecorder{}
		g := newGuardedOn(store, admission.GateOptions{},
			abuseOptions(func(o *admission.AbuseOptions) {
				o.FailDelay = time.Second
				o.MaxFailDelay = 10 * time.Second
				o.UserThrottleAfter = 1
			}), admission.LimiterOptions{})
		f := newFixture(t, RoleSubmissions, g.install, func(s *Server) {
			s.Auth = users.mechanisms()
			s.sleep = rec.sleep
			s.Limits.MaxErrors = 100
		})
		// Distributed guessing: five networks, one wrong password each.
		for i := 1; i <= 5; i++ {
			c := f.greetAs(fmt.Sprintf("127.0.%d.1", i))
			if r := authAs(c, sasl.MechPlain, "alice", "guess"); !strings.HasPrefix(r, "535 5.7.8") {
				t.Fatalf("guess %d: %q", i, r)
			}
		}
		rec.take()
		type try struct{ what, pass string }
		for i, mech := range []string{sasl.MechPlain, sasl.MechLogin, sasl.MechCRAMMD5, sasl.MechSCRAMSHA256} {
			// A network the botnet has used for its one check of
			// alice's password (user_throttle_after = 1 here): its
			// next attempts, from fresh addresses, are refused.
			net := fmt.Sprintf("127.0.%d.", 20+i)
			if r := authAs(f.greetAs(net+"1"), mech, "alice", "guess"); !strings.HasPrefix(r, "535 5.7.8") {
				t.Fatalf("%s: the network's check: %q", mech, r)
			}
			rec.take()
			got := map[string]time.Duration{}
			for j, x := range []try{{"right", testPassword}, {"wrong", "guess-2"}} {
				c := f.greetAs(fmt.Sprintf("%s%d", net, 10+j))
				before := users.count()
				r := authAs(c, mech, "alice", x.pass)
				got[x.what] = rec.take()
				checks := users.count() - before
				t.Logf("%s, %s password from a fresh address: %q after %v, %d credential checks", mech, x.what, r, got[x.what], checks)
				if !strings.HasPrefix(r, "535 5.7.8") {
					t.Errorf("%s, %s password: %q, want 535 5.7.8", mech, x.what, r)
				}
				if checks != 0 {
					t.Errorf("%s, %s password: the refused attempt checked the credentials %d times", mech, x.what, checks)
				}
			}
			if got["right"] != got["wrong"] || got["right"] != 10*time.Second {
				t.Errorf("%s: the right password was answered after %v, a wrong one after %v; want both after 10s",
					mech, got["right"], got["wrong"])
			}
		}
		// From networks new to alice, each attempt is checked: a wrong
		// password waits as long as a refused attempt; the right one
		// logs in at once.
		for i, x := range []try{{"wrong", "guess-3"}, {"right", testPassword}} {
			c := f.greetAs(fmt.Sprintf("127.0.%d.1", 40+i))
			before := users.count()
			r := authAs(c, sasl.MechPlain, "alice", x.pass)
			d := rec.take()
			t.Logf("PLAIN, %s password from a new network: %q after %v, %d credential checks", x.what, r, d, users.count()-before)
			want, wantD := "535 5.7.8", 10*time.Second
			if x.what == "right" {
				want, wantD = "235 2.7.0", 0
			}
			if !strings.HasPrefix(r, want) || d != wantD || users.count()-before != 1 {
				t.Errorf("%s password from a new network: %q after %v, %d checks; want %q after %v, one check",
					x.what, r, d, users.count()-before, want, wantD)
			}
		}
	})
}
