package test

import (
	"net/smtp"
	"strings"
	"testing"
)

// dsnCmd sends a raw MAIL or RCPT with its DSN parameters on c (Go's
// client has no way to add them) and reads the 250.
func dsnCmd(t *testing.T, c *smtp.Client, line string) {
	t.Helper()
	id, err := c.Text.Cmd("%s", line)
	if err != nil {
		t.Fatal(err)
	}
	c.Text.StartResponse(id)
	defer c.Text.EndResponse(id)
	if _, msg, err := c.Text.ReadResponse(250); err != nil {
		t.Fatalf("%s: %v %s", line, err, msg)
	}
}

// dsnSend sends one message with the DSN parameters in mail and rcpt
// (the whole MAIL and RCPT lines).
func dsnSend(t *testing.T, c *smtp.Client, mail, rcpt, body string) {
	t.Helper()
	dsnCmd(t, c, mail)
	dsnCmd(t, c, rcpt)
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(body)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("end of DATA: %v", err)
	}
}

// dsnSubmit submits one message as dora@example.test (password
// dora-password) on s's submission listener, as dsnSend.
func (s *server) dsnSubmit(mail, rcpt, body string) {
	s.t.Helper()
	c := mustDial(s.t, s.sub, "dora@example.test", "dora-password")
	defer c.Close()
	dsnSend(s.t, c, mail, rcpt, body)
	c.Quit()
}

// TestDSNWithPostfix runs the DSN extension (RFC 3461) against a real
// Postfix in both directions. Postfix holds example.net's mailboxes and
// relays everything else to Postern's mx listener; Postern's example.net
// MX is that Postfix.
//
//   - Postfix to Postern: a message sent through Postfix with
//     NOTIFY=SUCCESS reaches Postern with the parameters (Postfix logs no
//     notice of its own, since Postern offers DSN), and Postern's
//     success notice ("delivered", with Original-Envelope-Id and
//     Original-Recipient) comes back to the sender's Postfix mailbox.
//   - Postern to Postfix: a message submitted to Postern with
//     NOTIFY=SUCCESS, ORCPT and ENVID is relayed to Postfix with them
//     (Postern sends no notice: Postfix offers DSN), and Postfix's own
//     success notice comes back to the sender's Postern mailbox.
func TestDSNWithPostfix(t *testing.T) {
	integration(t)
	const ip = "127.0.0.146"
	s := testConfig(t, t.TempDir(), "")
	s.mxAt("example.net", ip)
	pf := startPostfixConf(t, ip, nil, `mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
relayhost = [127.0.0.1]:`+strings.Split(s.mx, ":")[1]+`
smtp_tls_security_level = none
`, `relay     unix  - - n -  - smtp
`, "example.net")
	s.start()
	s.addUser("dora@example.test", "dora-password")

	// Postfix to Postern.
	pc, err := smtp.Dial(ip + ":25")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if err := pc.Hello("client.example.net"); err != nil {
		t.Fatal(err)
	}
	dsnSend(t, pc, "MAIL FROM:<eve@example.net> RET=HDRS ENVID=pf-env+2B1",
		"RCPT TO:<dora@example.test> NOTIFY=SUCCESS ORCPT=rfc822;dora+2Bold@example.test",
		"From: eve@example.net\r\nTo: dora@example.test\r\nSubject: dsn-inbound\r\n\r\nhello\r\n")
	pc.Quit()
	s.waitMaildir("dora@example.test", "Subject: dsn-inbound")
	notice := pf.waitMessage("Original-Envelope-Id: pf-env+1")
	for _, want := range []string{
		"Subject: Successful Mail Delivery Report",
		"Reporting-MTA: dns; localhost",
		"Original-Recipient: rfc822;dora+old@example.test\nFinal-Recipient: rfc822; dora@example.test\nAction: delivered\nStatus: 2.0.0\n",
		"Subject: dsn-inbound", // the header section comes back
	} {
		if !strings.Contains(notice, want) {
			t.Errorf("Postern's notice lacks %q:\n%s", want, notice)
		}
	}
	// Postfix passed NOTIFY on (Postern offers DSN): it sent no
	// "relayed" notice of its own.
	relayed := pf.waitLog("to=<dora@example.test>", "status=sent")
	if strings.Contains(pf.sessionLog(), "sender delivery status notification") {
		t.Errorf("Postfix sent a notice of its own for %s:\n%s", relayed, pf.sessionLog())
	}

	// Postern to Postfix.
	s.dsnSubmit("MAIL FROM:<dora@example.test> RET=HDRS ENVID=pn-env+3D2",
		"RCPT TO:<eve@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;eve+2Bold@example.net",
		"From: dora@example.test\r\nTo: eve@example.net\r\nSubject: dsn-outbound\r\n\r\nhello\r\n")
	pf.waitMessage("Subject: dsn-outbound")
	pf.waitLog("from=<dora@example.test>")
	// Postfix's log shows the notice it sent for NOTIFY=SUCCESS.
	pf.waitLog("sender delivery status notification")
	back := s.waitMaildir("dora@example.test", "Original-Envelope-Id: pn-env=2")
	for _, want := range []string{
		"Reporting-MTA: dns; mx.example.net",
		"Original-Recipient: rfc822;eve+old@example.net",
		"Action: delivered",
	} {
		if !strings.Contains(back, want) {
			t.Errorf("Postfix's notice lacks %q:\n%s", want, back)
		}
	}
	// Postern sent none: Postfix took the parameters.
	for _, f := range s.maildirNew("dora@example.test") {
		if strings.Contains(f, "Reporting-MTA: dns; localhost") && strings.Contains(f, "eve@example.net") {
			t.Errorf("Postern sent a notice of its own:\n%s", f)
		}
	}
}

// TestDSNRelayedPastPostfix: a next hop that does not offer DSN (a real
// Postfix told to hide it) gets no DSN parameters, and Postern itself
// tells the sender who asked for NOTIFY=SUCCESS that the message was
// relayed (RFC 3461 §5.2.2), naming the next hop and its reply.
func TestDSNRelayedPastPostfix(t *testing.T) {
	integration(t)
	const ip = "127.0.0.147"
	pf := startPostfixConf(t, ip, nil, "smtpd_discard_ehlo_keywords = dsn\n", "", "nodsn.example")
	s := testConfig(t, t.TempDir(), "")
	s.mxAt("nodsn.example", ip)
	s.start()
	s.addUser("dora@example.test", "dora-password")
	s.dsnSubmit("MAIL FROM:<dora@example.test> ENVID=relay-1",
		"RCPT TO:<fred@nodsn.example> NOTIFY=SUCCESS",
		"From: dora@example.test\r\nTo: fred@nodsn.example\r\nSubject: dsn-relayed\r\n\r\nhello\r\n")
	pf.waitMessage("Subject: dsn-relayed")
	notice := s.waitMaildir("dora@example.test", "Original-Envelope-Id: relay-1")
	for _, want := range []string{
		"Subject: Successful Mail Delivery Report",
		"Final-Recipient: rfc822; fred@nodsn.example\r\nAction: relayed\r\nStatus: 2.0.0\r\nRemote-MTA: dns; mx.nodsn.example\r\n" +
			// Postfix's reply to BDAT ("Ok: 361 bytes queued as ...")
			// or to DATA ("Ok: queued as ...").
			"Diagnostic-Code: smtp; 250 2.0.0 Ok: ",
	} {
		if !strings.Contains(notice, want) {
			t.Errorf("notice lacks %q:\n%s", want, notice)
		}
	}
	// Postfix, offering no DSN, sent no notice.
	if strings.Contains(pf.sessionLog(), "sender delivery status notification") {
		t.Errorf("Postfix sent a notice:\n%s", pf.sessionLog())
	}
}

// TestDSNExpandedAlias: a message with NOTIFY=SUCCESS to an alias with
// two mailboxes reaches both, and the sender's notice says "expanded"
// for the alias (RFC 3461 §6.2.7.3, RFC 3464 §2.3.3), not "delivered".
func TestDSNExpandedAlias(t *testing.T) {
	s := testConfig(t, t.TempDir(), "\n[aliases]\n\"team@example.test\" = [\"dora@example.test\", \"erin@example.test\"]\n")
	s.start()
	s.addUser("dora@example.test", "dora-password")
	s.addUser("erin@example.test", "erin-password")
	s.dsnSubmit("MAIL FROM:<dora@example.test> ENVID=team-1",
		"RCPT TO:<team@example.test> NOTIFY=SUCCESS,FAILURE",
		"From: dora@example.test\r\nTo: team@example.test\r\nSubject: dsn-expanded\r\n\r\nhello\r\n")
	s.waitMaildir("erin@example.test", "Subject: dsn-expanded")
	notice := s.waitMaildir("dora@example.test", "Original-Envelope-Id: team-1")
	if want := "Final-Recipient: rfc822; team@example.test\r\nAction: expanded\r\nStatus: 2.0.0\r\n"; !strings.Contains(notice, want) {
		t.Errorf("notice lacks %q:\n%s", want, notice)
	}
	if n := len(s.maildirNew("dora@example.test")); n != 2 {
		t.Errorf("dora has %d messages, want the message and one notice", n)
	}
}
