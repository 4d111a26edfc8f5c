package smtpd

import (
	"bytes"
	"io/fs"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"postern/internal/smtp"
)

// bigBody returns n bytes of message body in 78-byte lines, some of them
// starting with a dot (stuffed by dotStuff).
func bigBody(n int) string {
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		if i%100 == 0 {
			b.WriteString(".")
		}
		b.WriteString(strconv.Itoa(i%10) + strings.Repeat("y", 75) + "\r\n")
	}
	return b.String()
}

// dotStuff stuffs a message for DATA (RFC 5321 §4.5.2).
func dotStuff(m string) string {
	m = strings.ReplaceAll(m, "\r\n.", "\r\n..")
	if strings.HasPrefix(m, ".") {
		m = "." + m
	}
	return m
}

// sendData runs MAIL, RCPT and DATA, sends msg stuffed and the final dot,
// and expects a reply starting with want.
func (c *client) sendData(msg, want string) string {
	c.t.Helper()
	c.transaction("a@example.net", "bob@example.org")
	c.raw(dotStuff(msg))
	return c.do(".", want)
}

// A message larger than a session keeps in memory goes to the Spooler's
// file as it arrives; the Filter and the Spooler get its header section
// in memory, Received on top, and its body from the file, intact; the file
// is closed when the transaction ends. A small one stays in memory.
func TestDataStreamedToFile(t *testing.T) {
	flt := recordingPrepend("X-Filter: seen\r\n")
	f := newFixture(t, RoleMX, func(s *Server) { s.Filter = flt })
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	hdr := "From: a@example.net\r\nSubject: big\r\n\r\n"
	body := bigBody(3 * memoryMax)
	c.sendData(hdr+body, "250 2.0.0")
	c.sendData("From: a@example.net\r\nSubject: small\r\n\r\nhello\r\n", "250 2.0.0")
	msgs := f.spool.messages()
	if len(msgs) != 2 || !msgs[0].inFile || msgs[1].inFile {
		t.Fatalf("spooled %d messages, in files: %v", len(msgs), msgs)
	}
	got := string(msgs[0].data)
	if !strings.HasPrefix(got, "X-Filter: seen\r\nReceived: from client.example") || !strings.HasSuffix(got, hdr+body) {
		t.Errorf("spooled %d bytes, starting %.80q", len(got), got)
	}
	if string(flt.seen[0]) != strings.TrimPrefix(got, "X-Filter: seen\r\n") {
		t.Error("the filter saw another message")
	}
	if n := f.spool.openFiles(); n != 0 || f.spool.files != 1 {
		t.Errorf("%d files made, %d left open", f.spool.files, n)
	}
}

// A header section too large to stay in memory at first is found in the
// file and read back; one past MaxHeaderSize, or a message with no empty
// line past it, is refused with 552 5.3.4 once the data is read, and the
// session goes on in step.
func TestDataHeaderSection(t *testing.T) {
	f := newFixture(t, RoleMX, func(s *Server) { s.Limits.MaxHeaderSize = 3 * memoryMax })
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	var long strings.Builder
	for i := 0; long.Len() < 2*memoryMax; i++ {
		long.WriteString("X-Pad-" + strconv.Itoa(i) + ": " + strings.Repeat("p", 70) + "\r\n")
	}
	msg := "From: a@example.net\r\n" + long.String() + "\r\n" + bigBody(memoryMax)
	c.sendData(msg, "250 2.0.0")
	c.sendData("From: a@example.net\r\n"+strings.Repeat(long.String(), 2)+"\r\nbody\r\n", "552 5.3.4 Header section too big")
	c.sendData(strings.Repeat("no empty line, no header field\r\n", 4*memoryMax/32), "552 5.3.4")
	c.sendData("From: a@example.net\r\nSubject: next\r\n\r\nok\r\n", "250 2.0.0")
	msgs := f.spool.messages()
	if len(msgs) != 2 || !strings.HasSuffix(string(msgs[0].data), msg) || !strings.Contains(string(msgs[1].data), "Subject: next") {
		t.Errorf("spooled %d messages", len(msgs))
	}
	if n := f.spool.openFiles(); n != 0 {
		t.Errorf("%d files left open", n)
	}
}

// With no memory budget left a session keeps only the first
// memoryFree bytes of a message in memory and writes the rest to the
// file; the message is the same. A header section that does not fit
// there needs the budget to be read back: without it, 452 4.3.1.
func TestDataMemoryBudget(t *testing.T) {
	budget := NewDataBudget(DataBudgetOptions{Memory: 1})
	f := newFixture(t, RoleMX, func(s *Server) { s.Budget = budget })
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	body := bigBody(memoryFree)
	msgs := []string{
		"From: a@example.net\r\nSubject: small\r\n\r\nhello\r\n",
		"From: a@example.net\r\nSubject: spilled\r\n\r\n" + body,
		"\r\nno header" + body,
		"x: y\r\n",
	}
	for _, m := range msgs {
		c.sendData(m, "250 2.0.0")
	}
	got := f.spool.messages()
	for i, m := range got {
		if m.inFile != (i == 1 || i == 2) || !strings.HasSuffix(string(m.data), msgs[i]) {
			t.Errorf("message %d: in a file %v, %d bytes", i, m.inFile, len(m.data))
		}
	}
	c.sendData("Subject: long header "+body+"\r\n\r\nbody\r\n", "452 4.3.1")
	if n := budget.memory.Load(); n != 0 {
		t.Errorf("memory budget held: %d", n)
	}
}

// Past the in-flight budget a message is read to its end and refused with
// 452 4.3.1, in step; DATA itself gets 452 4.3.1 while another session
// holds the whole budget; once that session is done the budget is back.
func TestDataInFlightBudget(t *testing.T) {
	budget := NewDataBudget(DataBudgetOptions{InFlight: 4 * budgetChunk})
	f := newFixture(t, RoleMX, func(s *Server) { s.Budget = budget })
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	c.sendData("Subject: big\r\n\r\n"+bigBody(5*budgetChunk), "452 4.3.1 Insufficient system storage")
	c.sendData("Subject: fits\r\n\r\n"+bigBody(2*budgetChunk), "250 2.0.0")

	// c holds the whole budget in a DATA that has not ended.
	c.transaction("a@example.net", "bob@example.org")
	c.raw("Subject: held\r\n\r\n" + bigBody(4*budgetChunk-100))
	waitFor(t, "the budget taken", func() bool { return budget.inFlight.Load() == 4*budgetChunk })
	c2 := f.dial()
	c2.do("EHLO other.example", "250 ")
	c2.do("MAIL FROM:<a@example.net>", "250")
	c2.do("RCPT TO:<bob@example.org>", "250")
	c2.do("DATA", "452 4.3.1")
	c.do(".", "250 2.0.0")
	if n := budget.inFlight.Load(); n != 0 {
		t.Errorf("budget held after the transactions: %d", n)
	}
	c2.sendData("Subject: now\r\n\r\nok\r\n", "250 2.0.0")
	if n := len(f.spool.messages()); n != 3 {
		t.Errorf("%d messages spooled, want 3", n)
	}
}

// A full disk is 452 4.3.1 (RFC 3463: insufficient system storage), not
// 451 4.3.0: when the spool fails so, and when the file of a large
// message cannot be made or written; the session stays in step.
func TestDataNoSpace(t *testing.T) {
	f := newFixture(t, RoleMX)
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	enospc := &fs.PathError{Op: "write", Path: "spool", Err: syscall.ENOSPC}
	f.spool.fail = enospc
	c.sendData("Subject: a\r\n\r\nx\r\n", "452 4.3.1")
	f.spool.fail = &fs.PathError{Op: "write", Path: "spool", Err: syscall.EDQUOT}
	c.sendData("Subject: a\r\n\r\nx\r\n", "452 4.3.1")
	f.spool.fail = nil
	f.spool.createFail = enospc
	c.sendData("Subject: big\r\n\r\n"+bigBody(2*memoryMax), "452 4.3.1")
	f.spool.createFail = &fs.PathError{Op: "open", Path: "spool", Err: syscall.EACCES}
	c.sendData("Subject: big\r\n\r\n"+bigBody(2*memoryMax), "451 4.3.0")
	f.spool.createFail = nil
	c.sendData("Subject: ok\r\n\r\nx\r\n", "250 2.0.0")
	if n := len(f.spool.messages()); n != 1 {
		t.Errorf("%d messages spooled", n)
	}
}

// A message with more Received fields than the loop limit, counting the
// session's own, is refused at the end of DATA with 554 5.4.6 on every
// role, so that it bounces to nobody; one under the limit passes.
func TestDataLoop(t *testing.T) {
	received := func(n int) string {
		return strings.Repeat("Received: from a.example by b.example; Fri, 27 Nov 2026 09:30:00 +0000\r\n", n)
	}
	for _, role := range []Role{RoleMX, RoleSubmission} {
		t.Run(role.String(), func(t *testing.T) {
			f := newFixture(t, role)
			c := f.dial()
			c.do("EHLO client.example", "250 ")
			from := "a@example.net"
			if role == RoleSubmission {
				c.startTLS()
				c.do("EHLO client.example", "250 ")
				c.login()
				from = "alice@example.org"
			}
			send := func(msg, want string) {
				c.transaction(from, "bob@example.org")
				c.raw(msg)
				c.do(".", want)
			}
			send(received(50)+"From: "+from+"\r\n\r\nloop\r\n", "554 5.4.6 Routing loop detected (51 Received header fields)")
			send(received(49)+"From: "+from+"\r\n\r\nfine\r\n", "250 2.0.0")
			// Received fields of a large message count as well.
			send(received(60)+"From: "+from+"\r\n\r\n"+bigBody(2*memoryMax), "554 5.4.6")
			if n := len(f.spool.messages()); n != 1 {
				t.Errorf("%d messages spooled, want 1", n)
			}
		})
	}
}

// DATA ends at Limits.DataTimeLimit whatever the pace of the client:
// one that sends a line now and then, each within DataTimeout, gets
// 421 4.4.2 and the close.
func TestDataTimeLimit(t *testing.T) {
	f := newFixture(t, RoleMX, func(s *Server) {
		s.Limits.DataTimeout = 5 * time.Second
		s.Limits.DataTimeLimit = 300 * time.Millisecond
	})
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	c.transaction("a@example.net", "bob@example.org")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 200 { // 10 s at most
			if _, err := c.conn.Write([]byte("x\r\n")); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	c.expect("421 4.4.2 Message not received within 300ms")
	c.conn.Close()
	<-done
	if n := len(f.spool.messages()); n != 0 {
		t.Errorf("%d messages spooled", n)
	}
	if f.spool.openFiles() != 0 {
		t.Error("file left open")
	}
}

// greetFrom connects from the loopback address src and reads the
// greeting.
func (f *fixture) greetFrom(src string) *client {
	f.t.Helper()
	c := f.dialFrom(src, "")
	c.expect("220 ")
	return c
}

// A client that did not log in has a share of the in-flight budget for
// its address and one for its network: once they are taken, its other
// sessions (and those of its network) get 452 4.3.1, while other
// networks still send; a logged-in user counts against the whole budget
// only.
func TestDataClientShares(t *testing.T) {
	budget := NewDataBudget(DataBudgetOptions{InFlight: 100 * budgetChunk, PerAddress: 3 * budgetChunk, PerNetwork: 5 * budgetChunk})
	f := newFixture(t, RoleMX, func(s *Server) { s.Budget = budget })
	held := f.greetFrom("127.0.0.1")
	held.do("EHLO a.example", "250 ")
	held.transaction("a@example.net", "bob@example.org")
	held.raw("Subject: held\r\n\r\n" + bigBody(3*budgetChunk-200))
	waitFor(t, "the address's share taken", func() bool { return budget.inFlight.Load() == 3*budgetChunk })

	same := f.greetFrom("127.0.0.1")
	same.do("EHLO a.example", "250 ")
	same.do("MAIL FROM:<a@example.net>", "250")
	same.do("RCPT TO:<bob@example.org>", "250")
	same.do("DATA", "452 4.3.1")

	// The network has 2 chunks left: a small message passes, a larger
	// one is read and refused.
	neighbour := f.greetFrom("127.0.0.2")
	neighbour.do("EHLO b.example", "250 ")
	neighbour.sendData("Subject: small\r\n\r\nhi\r\n", "250 2.0.0")
	neighbour.sendData("Subject: big\r\n\r\n"+bigBody(3*budgetChunk), "452 4.3.1")

	other := f.greetFrom("127.0.1.1")
	other.do("EHLO c.example", "250 ")
	other.sendData("Subject: other network\r\n\r\n"+bigBody(3*budgetChunk-200), "250 2.0.0")
	held.do(".", "250 2.0.0")
	if n := budget.inFlight.Load(); n != 0 || len(budget.byAddr) != 0 || len(budget.byNet) != 0 {
		t.Errorf("budget held after the transactions: %d, %v, %v", n, budget.byAddr, budget.byNet)
	}
}

// A logged-in user is not bound by a client share.
func TestDataSharesSkipUsers(t *testing.T) {
	budget := NewDataBudget(DataBudgetOptions{InFlight: 100 * budgetChunk, PerAddress: budgetChunk, PerNetwork: budgetChunk})
	f := newFixture(t, RoleSubmission, func(s *Server) { s.Budget = budget })
	c := f.dial()
	c.loginTLS()
	c.transaction("alice@example.org", "bob@example.org")
	c.raw("From: alice@example.org\r\n\r\n" + dotStuff(bigBody(4*budgetChunk)))
	c.do(".", "250 2.0.0")
}

// FuzzSinkHeader checks the sink's search for the end of the header
// section, which runs on the message in pieces as they go to the file,
// against smtp.HeaderEnd on the whole: the same offset whenever the
// section ends, none when it does not, however the message is cut.
func FuzzSinkHeader(f *testing.F) {
	for _, s := range []string{"a: b\r\n\r\nbody", "\r\nbody", "\r\r\n\r\n", "a\r\n\r", "no end\r\n", "x\r\n\r\n\r\n"} {
		f.Add([]byte(s), uint16(1), uint16(3))
	}
	f.Fuzz(func(t *testing.T, msg []byte, i, j uint16) {
		a := int(i) % (len(msg) + 1)
		b := a + int(j)%(len(msg)-a+1)
		d := &dataSink{hdrEnd: -1}
		for _, p := range [][]byte{msg[:a], msg[a:b], msg[b:]} {
			if d.hdrEnd < 0 {
				d.scanHeader(p, d.n)
			}
			d.n += len(p)
		}
		want := -1
		if end := smtp.HeaderEnd(msg); end < len(msg) || bytes.HasSuffix(msg, []byte("\r\n\r\n")) || bytes.Equal(msg, []byte("\r\n")) {
			want = end
		}
		if d.hdrEnd != want {
			t.Fatalf("%q cut at %d, %d: header ends at %d, want %d", msg, a, b, d.hdrEnd, want)
		}
	})
}
