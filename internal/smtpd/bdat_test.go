package smtpd

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"postern/internal/milter/miltertest"
	"postern/internal/testkit"
)

// bdat sends one BDAT command with chunk as its octets; last adds LAST.
func (c *client) bdat(chunk string, last bool) {
	c.t.Helper()
	cmd := "BDAT " + strconv.Itoa(len(chunk))
	if last {
		cmd += " LAST"
	}
	c.raw(cmd + "\r\n" + chunk)
}

// mailRcpt opens a transaction for bob@example.org.
func (c *client) mailRcpt() {
	c.t.Helper()
	c.do("MAIL FROM:<a@example.net>", "250 2.1.0")
	c.do("RCPT TO:<bob@example.org>", "250 2.1.5")
}

// CHUNKING is offered on every role (RFC 3030 §2), BINARYMIME on none.
func TestBdatOffered(t *testing.T) {
	for _, role := range []Role{RoleMX, RoleSubmission, RoleSubmissions} {
		f := newFixture(t, role)
		c := f.dial()
		got := c.do("EHLO client.example", "250 ")
		if !strings.Contains(got, "\n250-CHUNKING\n") && !strings.HasSuffix(got, "\n250 CHUNKING") {
			t.Errorf("%s: EHLO lacks CHUNKING:\n%s", role, got)
		}
		if strings.Contains(got, "BINARYMIME") {
			t.Errorf("%s: EHLO offers BINARYMIME:\n%s", role, got)
		}
		if h := c.do("HELP", "214 "); !strings.Contains(h, "BDAT") {
			t.Errorf("HELP lacks BDAT: %q", h)
		}
	}
}

// A message sent in chunks, pipelined with its envelope, is spooled
// as it came, Received on top; a line that starts with a dot is not
// unstuffed (BDAT does not stuff), and "." alone does not end it.
func TestBdatAccepted(t *testing.T) {
	f := newFixture(t, RoleMX)
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	part1 := "From: a@example.net\r\nSubject: chunks\r\n\r\n..two dots stay\r\n.\r\nMAIL FROM:<x@example.net>\r\n"
	part2 := "last line without CRLF"
	c.raw("MAIL FROM:<a@example.net>\r\nRCPT TO:<bob@example.org>\r\n" +
		"BDAT " + strconv.Itoa(len(part1)) + "\r\n" + part1 +
		"BDAT 0\r\n" +
		"BDAT " + strconv.Itoa(len(part2)) + " LAST\r\n" + part2)
	c.expect("250 2.1.0")
	c.expect("250 2.1.5")
	c.expect("250 2.0.0 " + strconv.Itoa(len(part1)) + " octets received")
	c.expect("250 2.0.0 " + strconv.Itoa(len(part1)) + " octets received")
	got := c.expect("250 2.0.0 OK queued as ")
	id := strings.TrimPrefix(got, "250 2.0.0 OK queued as ")
	msgs := f.spool.messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages spooled", len(msgs))
	}
	m := msgs[0]
	wantRcvd := "Received: from client.example ([127.0.0.1]) by " + testHost + " (Postern)\r\n" +
		"\twith ESMTP id " + id + " for <bob@example.org>;\r\n" +
		"\tFri, 27 Nov 2026 09:30:00 +0000\r\n"
	if want := wantRcvd + part1 + part2 + "\r\n"; string(m.data) != want {
		t.Errorf("spooled\n%q\nwant\n%q", m.data, want)
	}
	if m.env.ID != id || m.env.From != "a@example.net" || len(m.env.Recipients) != 1 {
		t.Errorf("envelope %+v", m.env)
	}
	// The session goes on: the next transaction may use DATA.
	c.transaction("a@example.net", "bob@example.org")
	c.do(message("From: a@example.net")+".", "250 2.0.0 OK queued as ")
	waitLog(t, f, "id="+id+" from=a@example.net rcpts=1")
}

// BDAT 0 LAST ends a message; alone, it is an empty message, which
// the checks of the end of the message see as DATA's would.
func TestBdatZeroLast(t *testing.T) {
	f := newFixture(t, RoleMX)
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	c.mailRcpt()
	c.bdat(message("From: a@example.net"), false)
	c.expect("250 2.0.0")
	c.bdat("", true)
	c.expect("250 2.0.0 OK queued as ")
	c.mailRcpt()
	c.bdat("", true)
	c.expect("250 2.0.0 OK queued as ")
	msgs := f.spool.messages()
	if len(msgs) != 2 || !strings.HasSuffix(string(msgs[0].data), message("From: a@example.net")) {
		t.Fatalf("spooled %+v", msgs)
	}
	if n := f.spool.openFiles(); n != 0 {
		t.Errorf("%d spool files left open", n)
	}
}

// The sequence rules of RFC 3030 §2 and §3: BDAT outside a
// transaction gets 503 and its octets are read past; DATA or RCPT
// after BDAT get 503 and end the transaction; RSET drops the chunks;
// after a refused chunk the next get 503. The session stays in step
// throughout.
func TestBdatSequence(t *testing.T) {
	f := newFixture(t, RoleMX, func(s *Server) { s.Limits.MaxErrors = 100 })
	c := f.dial()
	c.bdat("EHLO x\r\n", true)
	c.expect("503 5.5.1 Send EHLO first")
	c.do("EHLO client.example", "250 ")
	c.bdat("QUIT\r\n", true)
	c.expect("503 5.5.1 Need MAIL command")
	c.do("MAIL FROM:<a@example.net>", "250 2.1.0")
	c.bdat("QUIT\r\n", false)
	c.expect("503 5.5.1 Need RCPT command")
	c.do("RCPT TO:<bob@example.org>", "503 5.5.1 Need MAIL command") // the refused chunk ended it
	// After a chunk taken, DATA or RCPT (503) or RSET ends the
	// transaction: the last chunk then gets 503.
	for _, step := range []struct{ cmd, reply, last string }{
		{"DATA", "503 5.5.1 DATA not allowed after BDAT", "QUIT\r\n"},
		{"RCPT TO:<carol@example.org>", "503 5.5.1", "\r\nbody\r\n"},
		{"RSET", "250 2.0.0", "\r\nbody\r\n"},
	} {
		c.mailRcpt()
		c.bdat("Subject: x\r\n", false)
		c.expect("250 2.0.0")
		c.do(step.cmd, step.reply)
		c.bdat(step.last, true)
		c.expect("503 5.5.1 Need MAIL command")
	}

	// A refused chunk (a bare LF) fails the transaction.
	c.mailRcpt()
	c.bdat("Subject: x\n", false)
	c.expect("554 5.6.0")
	c.bdat("\r\nbody\r\n", true)
	c.expect("503 5.5.1 Need MAIL command")
	c.do("NOOP", "250 2.0.0")
	if n := len(f.spool.messages()); n != 0 {
		t.Errorf("%d messages spooled", n)
	}
	if n := f.spool.openFiles(); n != 0 {
		t.Errorf("%d spool files left open", n)
	}
}

// A size that is not a number loses the framing: 501 and the close.
// A bad end marker after a good size is read past and refused.
func TestBdatSyntax(t *testing.T) {
	for _, arg := range []string{"", "abc", "-5", "5x LAST", "0x10"} {
		f := newFixture(t, RoleMX)
		c := f.dial()
		c.do("EHLO client.example", "250 ")
		c.mailRcpt()
		c.do(strings.TrimSpace("BDAT "+arg), "501 5.5.4")
		c.expectClosed()
	}
	f := newFixture(t, RoleMX)
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	c.mailRcpt()
	c.raw("BDAT 6 FIRST\r\nQUIT\r\n")
	c.expect("501 5.5.4")
	c.do("NOOP", "250 2.0.0")
}

// The sizes announced are held against the message size limit before
// a chunk is read: 552, the chunk read past, the session in step. A
// chunk larger than the limit on its own is not read at all: 552 and
// the close, at once, whether it was announced as 2^63 octets or more
// digits than any integer holds.
func TestBdatTooBig(t *testing.T) {
	f := newFixture(t, RoleMX, func(s *Server) { s.Limits.MaxMessageSize = 1000 })
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	line := strings.Repeat("x", 98) + "\r\n"
	c.mailRcpt()
	c.bdat(strings.Repeat(line, 6), false)
	c.expect("250 2.0.0")
	c.bdat(strings.Repeat(line, 5), true)
	c.expect("552 5.3.4 Message too big")
	c.do("NOOP", "250 2.0.0")
	c.mailRcpt()
	c.bdat(strings.Repeat(line, 5), false)
	c.expect("250 2.0.0")
	c.bdat(strings.Repeat(line, 5), true) // exactly 1000
	c.expect("250 2.0.0 OK queued as ")
	if n := len(f.spool.messages()); n != 1 {
		t.Errorf("%d messages spooled", n)
	}
	for _, size := range []string{"9223372036854775808", strings.Repeat("9", 40), "1001"} {
		c := f.dial()
		c.do("EHLO client.example", "250 ")
		c.mailRcpt()
		start := time.Now()
		c.do("BDAT "+size+" LAST", "552 5.3.4 Message too big")
		c.expectClosed()
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("BDAT %s: closed after %v", size, d)
		}
	}
	// Outside a transaction too, a chunk past the limit is not read.
	c = f.dial()
	c.do("EHLO client.example", "250 ")
	c.do("BDAT 9223372036854775807", "503 5.5.1")
	c.expectClosed()
	if n := f.spool.openFiles(); n != 0 {
		t.Errorf("%d spool files left open", n)
	}
}

// A client that announces 100 MB and sends 10 octets is cut by the data
// timeout, as in DATA; the chunks of a message that takes too long are
// cut at the data time limit, counted from its first chunk.
func TestBdatTimeouts(t *testing.T) {
	f := newFixture(t, RoleMX, func(s *Server) {
		s.Limits.MaxMessageSize = 200 << 20
		s.Limits.DataTimeout = 500 * time.Millisecond
	})
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	c.mailRcpt()
	c.raw("BDAT 100000000 LAST\r\n0123456789")
	c.expect("421 4.4.2 Timeout")
	c.expectClosed()

	f = newFixture(t, RoleMX, func(s *Server) { s.Limits.DataTimeLimit = 300 * time.Millisecond })
	c = f.dial()
	c.do("EHLO client.example", "250 ")
	c.mailRcpt()
	c.bdat("Subject: slow\r\n", false)
	c.expect("250 2.0.0")
	time.Sleep(400 * time.Millisecond)
	c.do("NOOP", "421 4.4.2 Message not received within")
	c.expectClosed()
	if n := f.spool.openFiles(); n != 0 {
		t.Errorf("%d spool files left open", n)
	}
}

// A message larger than a session keeps in memory goes to the spool's
// file as its chunks arrive, as in DATA; many tiny chunks make a whole
// message too.
func TestBdatStreamed(t *testing.T) {
	flt := recordingPrepend("X-Filter: seen\r\n")
	f := newFixture(t, RoleMX, func(s *Server) { s.Filter = flt })
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	msg := "From: a@example.net\r\nSubject: big\r\n\r\n" + bigBody(3*memoryMax)
	c.mailRcpt()
	for rest := msg; rest != ""; {
		n := min(len(rest), 50000)
		c.bdat(rest[:n], n == len(rest))
		rest = rest[n:]
	}
	for range (len(msg) + 49999) / 50000 {
		c.expect("250 2.0.0")
	}
	tiny := message("From: a@example.net", "Subject: tiny chunks")
	c.mailRcpt()
	var b strings.Builder
	for i := range len(tiny) {
		b.WriteString("BDAT 1\r\n" + tiny[i:i+1])
	}
	b.WriteString("BDAT 0 LAST\r\n")
	c.raw(b.String())
	for range len(tiny) {
		c.expect("250 2.0.0")
	}
	c.expect("250 2.0.0 OK queued as")
	msgs := f.spool.messages()
	if len(msgs) != 2 || !msgs[0].inFile || msgs[1].inFile {
		t.Fatalf("spooled %d messages, in files: %v", len(msgs), len(msgs) > 0 && msgs[0].inFile)
	}
	if got := string(msgs[0].data); !strings.HasPrefix(got, "X-Filter: seen\r\nReceived: ") || !strings.HasSuffix(got, msg) {
		t.Errorf("spooled %d octets, starting %.80q", len(got), got)
	}
	if got := string(msgs[1].data); !strings.HasSuffix(got, "\r\n"+tiny) {
		t.Errorf("spooled %q", got)
	}
	if n := f.spool.openFiles(); n != 0 || f.spool.files != 1 {
		t.Errorf("%d files made, %d left open", f.spool.files, n)
	}
}

// A client that goes away between chunks leaves no spool file open.
func TestBdatClientGone(t *testing.T) {
	f := newFixture(t, RoleMX)
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	c.mailRcpt()
	c.bdat("Subject: x\r\n\r\n"+bigBody(2*memoryMax), false)
	c.expect("250 2.0.0")
	c.conn.Close()
	testkit.WaitFor(t, "the spool file closed", func() bool { return f.spool.openFiles() == 0 })
	if f.spool.files != 1 {
		t.Errorf("%d files made", f.spool.files)
	}
}

// On submission the end of a chunked message gets the checks of DATA:
// the From address must be the user's, Message-ID and Date are added.
func TestBdatSubmission(t *testing.T) {
	f := newFixture(t, RoleSubmissions)
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	c.login()
	c.do("MAIL FROM:<alice@example.org>", "250 2.1.0")
	c.do("RCPT TO:<bob@example.org>", "250 2.1.5")
	c.bdat(message("From: mallory@example.org", "Subject: x"), true)
	c.expect("553 5.7.1")
	c.do("MAIL FROM:<alice@example.org>", "250 2.1.0")
	c.do("RCPT TO:<bob@example.org>", "250 2.1.5")
	c.bdat(message("From: alice@example.org", "Subject: x"), true)
	c.expect("250 2.0.0 OK queued as")
	msgs := f.spool.messages()
	if len(msgs) != 1 || !strings.Contains(string(msgs[0].data), "\r\nMessage-ID: <") || msgs[0].env.AuthUser != "alice" {
		t.Fatalf("spooled %+v", msgs)
	}
}

// The in-flight budget holds across chunks as across DATA: a message
// that passes it gets 452 4.3.1 at the chunk that passed, read to its
// end, the session in step; a session holding the whole budget between
// chunks makes another's first BDAT 452 4.3.1 (its chunk read past);
// the budget is back once the first message ends.
func TestBdatInFlightBudget(t *testing.T) {
	budget := NewDataBudget(DataBudgetOptions{InFlight: 4 * budgetChunk})
	f := newFixture(t, RoleMX, func(s *Server) { s.Budget = budget })
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	c.mailRcpt()
	c.bdat("Subject: big\r\n\r\n"+bigBody(3*budgetChunk), false)
	c.expect("250 2.0.0")
	c.bdat(bigBody(2*budgetChunk), true)
	c.expect("452 4.3.1 Insufficient system storage")
	c.do("NOOP", "250 2.0.0")

	c.mailRcpt()
	c.bdat("Subject: held\r\n\r\n"+bigBody(4*budgetChunk-100), false)
	c.expect("250 2.0.0")
	c2 := f.dial()
	c2.do("EHLO other.example", "250 ")
	c2.mailRcpt()
	c2.bdat("Subject: refused\r\n\r\nx\r\n", true)
	c2.expect("452 4.3.1")
	c2.do("NOOP", "250 2.0.0")
	c.bdat("", true)
	c.expect("250 2.0.0 OK queued as")
	if n := budget.inFlight.Load(); n != 0 {
		t.Errorf("budget held after the transactions: %d", n)
	}
	c2.mailRcpt()
	c2.bdat("Subject: now\r\n\r\nok\r\n", true)
	c2.expect("250 2.0.0 OK queued as")
	if n := len(f.spool.messages()); n != 2 {
		t.Errorf("%d messages spooled, want 2", n)
	}
}

// Milters see a chunked message as one sent with DATA: DATA before the
// first chunk (its refusal reads the chunk past), the header and body at
// the last, their changes spooled.
func TestBdatMilter(t *testing.T) {
	m := startMilter(t, miltertest.At('E', miltertest.AddHeader("X-Milter", "seen"), miltertest.Accept))
	f := newFixture(t, RoleMX, withMilters(m))
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	c.mailRcpt()
	msg := message("From: a@example.net", "Subject: chunked")
	c.bdat(msg[:10], false)
	c.expect("250 2.0.0")
	c.bdat(msg[10:], true)
	c.expect("250 2.0.0 OK queued as")
	c.do("QUIT", "221")
	m.WaitCodes(t, "Q")
	if got := m.Codes(); got != "CHMRTLLNBEQ" {
		t.Fatalf("milter events %q", got)
	}
	if b := eventsOf(m, 'B'); len(b) != 1 || string(b[0].Data) != "Hello.\r\n" {
		t.Errorf("body events %+v", b)
	}
	if got := string(f.spool.messages()[0].data); !strings.Contains(got, "\r\nX-Milter: seen\r\n") {
		t.Errorf("spooled\n%s", got)
	}

	m2 := startMilter(t, miltertest.At('T', miltertest.ReplyCode("550 5.7.0 No mail today")))
	f = newFixture(t, RoleMX, withMilters(m2))
	c = f.dial()
	c.do("EHLO client.example", "250 ")
	c.mailRcpt()
	c.bdat(msg, true)
	c.expect("550 5.7.0 No mail today")
	c.do("NOOP", "250 2.0.0")
	if n := len(f.spool.messages()); n != 0 {
		t.Errorf("%d messages spooled", n)
	}
}
