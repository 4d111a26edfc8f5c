package smtpd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"postern/internal/metrics"
	"postern/internal/milter"
	"postern/internal/milter/miltertest"
	"postern/internal/smtp"
	"postern/internal/testkit"
)

// withMilters returns a fixture option that gives the Server the test
// milters, in order, with timeouts no test waits for on the real clock.
func withMilters(srvs ...*miltertest.Server) func(*Server) {
	return func(s *Server) {
		for i, m := range srvs {
			s.Milters = append(s.Milters, milter.Milter{Name: "m" + string(rune('1'+i)), Address: m.Address(),
				ConnectTimeout: time.Minute, CommandTimeout: time.Minute, ContentTimeout: time.Minute,
				DefaultAction: milter.DefaultTempfail})
		}
	}
}

// startMilter starts a test milter answering with handler.
func startMilter(t *testing.T, handler func(ev *miltertest.Event) []miltertest.Packet) *miltertest.Server {
	m := &miltertest.Server{Handler: handler}
	m.Start(t)
	return m
}

// eventsOf returns the milter's events of code.
func eventsOf(m *miltertest.Server, code byte) []miltertest.Event {
	var out []miltertest.Event
	for _, e := range m.Events() {
		if e.Code == code {
			out = append(out, e)
		}
	}
	return out
}

// The milter is asked at each stage, after Postern's own checks: the
// recipient Postern refuses never reaches it; it gets the macros and,
// on mx, the message as the Filter left it (Authentication-Results),
// without Postern's own Received.
func TestMilterStages(t *testing.T) {
	m := startMilter(t, nil)
	flt := recordingPrepend("Authentication-Results: " + testHost + "; spf=pass\r\n")
	f := newFixture(t, RoleMX, withMilters(m), func(s *Server) { s.Filter = flt })
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	c.do("MAIL FROM:<a@example.net> BODY=8BITMIME", "250 2.1.0")
	c.do("RCPT TO:<nobody@example.org>", "550 5.1.1")
	c.do("RCPT TO:<bob@example.org>", "250 2.1.5")
	c.do("DATA", "354 ")
	c.do(message("From: a@example.net", "Subject: stages")+".", "250 2.0.0")
	c.do("QUIT", "221")
	m.WaitCodes(t, "Q")
	if got := m.Codes(); got != "CHMRTLLLNBEQ" {
		t.Fatalf("milter events %q", got)
	}
	id := f.spool.messages()[0].env.ID
	ev := m.Events()
	if mac := ev[0].Macros; mac["j"] != testHost || mac["{daemon_name}"] != f.srv.Name || mac["{client_addr"+"}"] != "127.0.0.1" {
		t.Errorf("connect macros %v", mac)
	}
	if !slices.Equal(ev[1].Args, []string{"client.example"}) || !slices.Equal(ev[2].Args, []string{"<a@example.net>", "BODY=8BITMIME"}) {
		t.Errorf("helo %q, mail %q", ev[1].Args, ev[2].Args)
	}
	if !slices.Equal(ev[3].Args, []string{"<bob@example.org>"}) || ev[3].Macros["{rcpt_mailer}"] != "local" || ev[4].Macros["i"] != id {
		t.Errorf("rcpt %q %v, data macros %v (id %s)", ev[3].Args, ev[3].Macros, ev[4].Macros, id)
	}
	var fields []string
	for _, e := range eventsOf(m, 'L') {
		fields = append(fields, e.Args[0])
	}
	if !slices.Equal(fields, []string{"Authentication-Results", "From", "Subject"}) {
		t.Errorf("the milter saw the fields %q, want Authentication-Results and the client's, not our Received", fields)
	}
	if b := eventsOf(m, 'B'); len(b) != 1 || string(b[0].Data) != "Hello.\r\n" {
		t.Errorf("body events %+v", b)
	}
}

// A milter that rejects the connection: 554 instead of 220, then 503
// to everything but QUIT (RFC 5321 §3.1), as Postfix does.
func TestMilterConnectReject(t *testing.T) {
	m := startMilter(t, miltertest.At('C', miltertest.Reject))
	f := newFixture(t, RoleMX, withMilters(m))
	c := f.dialNoGreeting()
	c.expect("554 " + testHost + " ESMTP not accepting connections")
	c.do("EHLO client.example", "503 5.7.0 Error: access denied")
	c.do("MAIL FROM:<a@example.net>", "503 5.7.0")
	c.do("QUIT", "221")
	waitLog(t, f, "reason=\"milter m1: reject at connect\"")
}

// A milter that refuses the connection for now: 421 and the close.
func TestMilterConnectTempfail(t *testing.T) {
	m := startMilter(t, miltertest.At('C', miltertest.Tempfail))
	f := newFixture(t, RoleMX, withMilters(m))
	c := f.dialNoGreeting()
	c.expect("421 " + testHost + " Service unavailable - try again later")
	c.expectClosed()
}

// Refusals at each stage, with the milter's own reply or Postfix's.
func TestMilterRefusals(t *testing.T) {
	m := startMilter(t, func(ev *miltertest.Event) []miltertest.Packet {
		switch {
		case ev.Code == 'H' && ev.Args[0] == "bad.example":
			return []miltertest.Packet{miltertest.Reject}
		case ev.Code == 'M' && ev.Args[0] == "<later@example.net>":
			return []miltertest.Packet{miltertest.Tempfail}
		case ev.Code == 'R' && ev.Args[0] == "<bob@example.org>":
			return []miltertest.Packet{miltertest.ReplyCode("550 5.1.1 <bob@example.org>: no mail for bob")}
		case ev.Code == 'E':
			return []miltertest.Packet{miltertest.ReplyCode("554 5.7.1 Gtube pattern")}
		}
		return nil
	})
	f := newFixture(t, RoleMX, withMilters(m))
	c := f.dial()
	c.do("EHLO bad.example", "550 5.7.1 Command rejected")
	c.do("MAIL FROM:<a@example.net>", "503 5.5.1") // the refused EHLO greeted nothing
	c.do("EHLO client.example", "250 ")
	c.do("EHLO bad.example", "550 5.7.1")
	c.do("MAIL FROM:<a@example.net>", "503 5.5.1") // nor the one before
	c.do("EHLO client.example", "250 ")
	c.do("MAIL FROM:<later@example.net>", "451 4.7.1 Service unavailable - try again later")
	c.do("MAIL FROM:<a@example.net>", "250 2.1.0")
	c.do("RCPT TO:<bob@example.org>", "550 5.1.1 <bob@example.org>: no mail for bob")
	c.do("RCPT TO:<carol@example.org>", "250 2.1.5")
	c.do("DATA", "354 ")
	c.do(message("From: a@example.net", "Subject: spam")+".", "554 5.7.1 Gtube pattern")
	if n := len(f.spool.messages()); n != 0 {
		t.Errorf("%d messages spooled", n)
	}
	// The refused MAIL was aborted for the milter.
	if got := m.Codes(); !strings.Contains(got, "CHHHHMAMRRTLLNBE") {
		t.Errorf("milter events %q", got)
	}
}

// DATA refused by a milter: the reply replaces the 354.
func TestMilterDataReject(t *testing.T) {
	m := startMilter(t, miltertest.At('T', miltertest.ReplyCode("550 5.7.0 No mail today")))
	f := newFixture(t, RoleMX, withMilters(m))
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	c.do("MAIL FROM:<a@example.net>", "250 2.1.0")
	c.do("RCPT TO:<bob@example.org>", "250 2.1.5")
	c.do("DATA", "550 5.7.0 No mail today")
	c.do("RSET", "250")
	m.WaitCodes(t, "TA") // the message was aborted for the milter
}

// Discard: the client is told 250, nothing is spooled; a discard before
// the end of the message means the milters are asked nothing more.
func TestMilterDiscard(t *testing.T) {
	for _, code := range []byte("RE") {
		t.Run(string(code), func(t *testing.T) {
			m := startMilter(t, miltertest.At(code, miltertest.Discard))
			f := newFixture(t, RoleMX, withMilters(m))
			c := f.dial()
			c.do("EHLO client.example", "250 ")
			c.transaction("a@example.net", "bob@example.org")
			c.do(message("From: a@example.net", "Subject: x")+".", "250 2.0.0 OK queued as ")
			if n := len(f.spool.messages()); n != 0 {
				t.Errorf("%d messages spooled", n)
			}
			waitLog(t, f, "message discarded")
			if code == 'R' && strings.ContainsAny(m.Codes(), "TLE") {
				t.Errorf("milter events %q after its discard", m.Codes())
			}
		})
	}
}

// Quarantine: the message is taken and held in the queue, and the
// client is not told.
func TestMilterQuarantine(t *testing.T) {
	m := startMilter(t, miltertest.At('E', miltertest.Quarantine("phishing suspect"), miltertest.Continue))
	f := newFixture(t, RoleMX, withMilters(m))
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	c.transaction("a@example.net", "bob@example.org")
	if got := c.do(message("From: a@example.net")+".", "250 2.0.0"); strings.Contains(got, "held") {
		t.Errorf("the client is told %q", got)
	}
	env := f.spool.messages()[0].env
	if !env.Hold || env.HoldReason != "milter m1: phishing suspect" {
		t.Errorf("envelope Hold %v, reason %q", env.Hold, env.HoldReason)
	}
	waitLog(t, f, "message quarantined")
}

// Header and envelope changes reach the spool.
func TestMilterChanges(t *testing.T) {
	m := startMilter(t, miltertest.At('E',
		miltertest.InsertHeader(0, "X-Top", "first"),
		miltertest.ChangeHeader(1, "Subject", "[SPAM] hello"),
		miltertest.AddHeader("X-Spam", "Yes"),
		miltertest.ChangeFrom("<bounces@example.net>"),
		miltertest.AddRcpt("<carol@example.org>"),
		miltertest.DeleteRcpt("<bob@example.org>"),
		miltertest.Accept))
	f := newFixture(t, RoleMX, withMilters(m))
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	c.transaction("a@example.net", "bob@example.org")
	c.do(message("From: a@example.net", "Subject: hello")+".", "250 2.0.0")
	s := f.spool.messages()[0]
	if s.env.From != "bounces@example.net" || !slices.Equal(s.env.Recipients, []string{"carol@example.org"}) {
		t.Errorf("envelope %q -> %q", s.env.From, s.env.Recipients)
	}
	got := string(s.data)
	if !strings.HasPrefix(got, "X-Top: first\r\nReceived: from client.example") ||
		!strings.Contains(got, "\r\nSubject: [SPAM] hello\r\nX-Spam: Yes\r\n\r\nHello.\r\n") || strings.Contains(got, "Subject: hello") {
		t.Errorf("spooled\n%s", got)
	}
}

// Envelope changes Postern would refuse from a client make the milter
// fail: its default action applies and nothing changes.
func TestMilterRefusedEnvelopeChange(t *testing.T) {
	m := startMilter(t, miltertest.At('E', miltertest.AddRcpt("<not an address>"), miltertest.Continue))
	f := newFixture(t, RoleMX, withMilters(m))
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	c.transaction("a@example.net", "bob@example.org")
	c.do(message("From: a@example.net")+".", "451 4.7.1 Service unavailable")
	waitLog(t, f, "error=protocol")
}

// A new body from a milter, larger than what a session keeps in memory,
// goes to a spool file through a sink as the client's did; the message
// goes to the milter in chunks of at most 65535 bytes.
func TestMilterReplaceBodyLarge(t *testing.T) {
	line := strings.Repeat("n", 70) + "\n" // the milter's LF line ends become CRLF
	newBody := strings.Repeat(line, (3<<20)/len(line))
	m := startMilter(t, miltertest.At('E', append(miltertest.ReplaceBody([]byte(newBody)), miltertest.Continue)...))
	f := newFixture(t, RoleMX, withMilters(m))
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	c.transaction("a@example.net", "bob@example.org")
	old := strings.Repeat(strings.Repeat("o", 78)+"\r\n", (2<<20)/80)
	c.do("From: a@example.net\r\n\r\n"+old+".", "250 2.0.0")
	s := f.spool.messages()[0]
	body := string(s.data[bytes.Index(s.data, []byte("\r\n\r\n"))+4:])
	if !s.inFile || body != strings.ReplaceAll(newBody, "\n", "\r\n") {
		t.Errorf("spooled in a file %v, body of %d bytes", s.inFile, len(body))
	}
	var sent int
	for _, b := range eventsOf(m, 'B') {
		if len(b.Data) > 65535 {
			t.Fatalf("body chunk of %d bytes", len(b.Data))
		}
		sent += len(b.Data)
	}
	if sent != len(old) {
		t.Errorf("the milter got %d bytes of body, want %d", sent, len(old))
	}
	if n := f.spool.openFiles(); n != 0 {
		t.Errorf("%d spool files left open", n)
	}
}

// Two milters in order; on submission the Filter (the DKIM signature)
// comes after them and sees their changes.
func TestMilterOrderSubmission(t *testing.T) {
	m1 := startMilter(t, miltertest.At('E', miltertest.AddHeader("X-First", "1"), miltertest.Continue))
	m2 := startMilter(t, miltertest.At('E', miltertest.AddHeader("X-Second", "2"), miltertest.Continue))
	flt := recordingPrepend("DKIM-Signature: v=1\r\n")
	f := newFixture(t, RoleSubmission, withMilters(m1, m2), func(s *Server) { s.Filter = flt })
	c := f.dial()
	c.loginTLS()
	c.transaction("alice@example.org", "bob@example.net")
	c.do(message("From: alice@example.org", "Subject: x")+".", "250 2.0.0")
	var secondSaw []string
	for _, e := range eventsOf(m2, 'L') {
		secondSaw = append(secondSaw, e.Args[0])
	}
	if !slices.Contains(secondSaw, "X-First") {
		t.Errorf("the second milter saw %q", secondSaw)
	}
	if s := string(flt.seen[0]); !strings.Contains(s, "X-First: 1\r\nX-Second: 2\r\n") {
		t.Errorf("the Filter saw\n%s", s)
	}
	if ev := eventsOf(m1, 'M'); len(ev) != 1 || ev[0].Macros["{auth_authen}"] != "alice" || ev[0].Macros["{auth_type}"] != "PLAIN" {
		t.Errorf("mail events %+v", ev)
	}
	if ev := eventsOf(m1, 'H'); len(ev) != 2 || ev[1].Macros["{tls_version}"] == "" {
		t.Errorf("helo events %+v", ev)
	}
}

// A milter that is down takes its default action, counted and logged
// with the session.
func TestMilterDown(t *testing.T) {
	down := miltertest.DownAddress(t)
	for _, action := range []milter.DefaultAction{milter.DefaultTempfail, milter.DefaultAccept} {
		t.Run(string(action), func(t *testing.T) {
			f := newFixture(t, RoleMX, func(s *Server) {
				s.Name = "down-" + string(action)
				s.Milters = []milter.Milter{{Name: "down", Address: down, ConnectTimeout: time.Second, DefaultAction: action}}
			})
			errs := metrics.MilterErrors.WithLabelValues(f.srv.Name, "down", "negotiate", "unavailable")
			defaults := metrics.MilterDefaultActions.WithLabelValues(f.srv.Name, "down", string(action))
			c := f.dialNoGreeting()
			if action == milter.DefaultTempfail {
				c.expect("421 " + testHost + " Service unavailable")
				c.expectClosed()
			} else {
				c.expect("220 ")
				c.do("EHLO client.example", "250 ")
				c.transaction("a@example.net", "bob@example.org")
				c.do(message("From: a@example.net")+".", "250 2.0.0")
			}
			waitLog(t, f, "msg=\"milter failed\" listener="+f.srv.Name+" session=")
			waitLog(t, f, "milter=down stage=negotiate error=unavailable default_action="+string(action))
			if counterValue(errs) != 1 || counterValue(defaults) != 1 {
				t.Errorf("errors %v, default actions %v", counterValue(errs), counterValue(defaults))
			}
		})
	}
}

// A milter that stops answering: its timeout (on an injected clock) ends
// the wait and its default action applies.
func TestMilterTimeout(t *testing.T) {
	for _, action := range []milter.DefaultAction{milter.DefaultTempfail, milter.DefaultAccept} {
		t.Run(string(action), func(t *testing.T) {
			m := startMilter(t, miltertest.At('E', miltertest.AddHeader("X-Half", "x"), miltertest.Hang))
			timers := &testkit.Timers{}
			f := newFixture(t, RoleMX, withMilters(m), func(s *Server) {
				s.Name = "timeout-" + string(action)
				s.Milters[0].ContentTimeout = 5 * time.Minute
				s.Milters[0].DefaultAction = action
				s.MilterOptions.Timers = timers
			})
			timeouts := metrics.MilterErrors.WithLabelValues(f.srv.Name, "m1", "eom", "timeout")
			c := f.dial()
			c.do("EHLO client.example", "250 ")
			c.transaction("a@example.net", "bob@example.org")
			c.send(message("From: a@example.net") + ".")
			m.WaitCodes(t, "E")
			if !timers.WaitArmed(5*time.Minute, 5*time.Second) {
				t.Fatalf("no 5m timer armed: %v", timers.Armed())
			}
			timers.Advance(5 * time.Minute)
			if action == milter.DefaultTempfail {
				c.expect("451 4.7.1 Service unavailable - try again later")
				c.do("MAIL FROM:<a@example.net>", "451 4.7.1") // the milter stays failed for the session
			} else {
				c.expect("250 2.0.0")
				if got := string(f.spool.messages()[0].data); strings.Contains(got, "X-Half") {
					t.Errorf("a change of the milter that timed out was applied:\n%s", got)
				}
			}
			if counterValue(timeouts) != 1 {
				t.Errorf("timeouts counted: %v", counterValue(timeouts))
			}
			waitLog(t, f, "stage=eom error=timeout default_action="+string(action))
		})
	}
}

// hashSpool is a testSpool that keeps a digest of each message, not the
// message: a test of large messages holds none of them.
type hashSpool struct {
	*testSpool
	mu     sync.Mutex
	sums   [][32]byte
	inFile []bool
}

func (h *hashSpool) PutMessage(ctx context.Context, env *smtp.Envelope, msg *smtp.Message) error {
	d := sha256.New()
	if _, err := msg.WriteTo(d); err != nil {
		return err
	}
	_, _, inFile := msg.Body.File()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sums = append(h.sums, [32]byte(d.Sum(nil)))
	h.inFile = append(h.inFile, inFile)
	return nil
}

// TestMilterMemory sends a 35 MB message through a milter that reads it
// all and puts a 35 MB body of its own in place: the session streams the
// message to the milter in 64 KiB chunks and the new body to a spool
// file, so the heap grows by a few megabytes, not by the message.
func TestMilterMemory(t *testing.T) {
	const size = 35 << 20
	chunk := bytes.Repeat([]byte(strings.Repeat("r", 70)+"\r\n"), 65535/72) // the new body's chunks, all one slice
	var replacement []miltertest.Packet
	for n := 0; n < size; n += len(chunk) {
		replacement = append(replacement, miltertest.Packet{Code: 'b', Data: chunk})
	}
	m := &miltertest.Server{DiscardBody: true, Handler: miltertest.At('E', append(replacement, miltertest.Continue)...)}
	m.Start(t)
	hs := &hashSpool{testSpool: &testSpool{}}
	f := newFixture(t, RoleMX, withMilters(m), func(s *Server) {
		s.Spool = hs
		s.Limits.MaxMessageSize = 40 << 20
	})
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	c.transaction("a@example.net", "bob@example.org")

	// A collector that lags on a loaded machine lets garbage count as
	// growth: collect often, so that the peak is what is held.
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	line := []byte(strings.Repeat("c", 78) + "\r\n")
	block := bytes.Repeat(line, 64<<10/len(line))
	c.raw("From: a@example.net\r\nSubject: big\r\n\r\n")
	for n := 0; n < size; n += len(block) {
		c.raw(string(block))
	}
	c.raw(".\r\n")
	c.conn.SetReadDeadline(time.Now().Add(60 * time.Second))
	if l, err := c.br.ReadString('\n'); err != nil || !strings.HasPrefix(l, "250 2.0.0") {
		t.Fatalf("end of data: %q %v", l, err)
	}
	close(stop)
	<-sampled
	growth := int64(peak.Load()) - int64(base)
	t.Logf("heap in use: %d MB before, peak %d MB during the message (growth %d MB)", base>>20, peak.Load()>>20, growth>>20)
	var got int
	for _, e := range eventsOf(m, 'B') {
		got += e.Size
	}
	if got < size {
		t.Errorf("the milter got %d bytes of body, want at least %d", got, size)
	}
	if len(hs.sums) != 1 || !hs.inFile[0] {
		t.Fatalf("spooled %d messages, in a file: %v", len(hs.sums), hs.inFile)
	}
	if growth > 16<<20 {
		t.Errorf("the heap grew by %d MB for a 35 MB message and a 35 MB new body", growth>>20)
	}
}

// A body a milter puts in place counts in the DataBudget's total, not in
// the client's share (the client sent its message already); one the
// budget has no room for is refused as any message would be, 452 4.3.1.
func TestMilterNewBodyBudget(t *testing.T) {
	const size = 512 << 10
	newBody := bytes.Repeat([]byte(strings.Repeat("n", 62)+"\r\n"), size/64)
	for name, tc := range map[string]struct {
		inFlight int64
		want     string
	}{
		"within the total": {64 * budgetChunk, "250 2.0.0"},
		"past the total":   {12 * budgetChunk, "452 4.3.1"},
	} {
		t.Run(name, func(t *testing.T) {
			m := startMilter(t, miltertest.At('E', append(miltertest.ReplaceBody(newBody), miltertest.Continue)...))
			budget := NewDataBudget(DataBudgetOptions{InFlight: tc.inFlight, PerAddress: 10 * budgetChunk, PerNetwork: 10 * budgetChunk})
			f := newFixture(t, RoleMX, withMilters(m), func(s *Server) { s.Budget = budget })
			c := f.dial()
			c.do("EHLO client.example", "250 ")
			c.transaction("a@example.net", "bob@example.org")
			c.do("From: a@example.net\r\n\r\n"+strings.Repeat(strings.Repeat("o", 62)+"\r\n", size/64)+".", tc.want)
			c.do("QUIT", "221")
			testkit.WaitFor(t, "the budget given back", func() bool { return budget.inFlight.Load() == 0 && budget.memory.Load() == 0 })
		})
	}
}
