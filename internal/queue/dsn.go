package queue

import (
	"bytes"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"postern/internal/smtp"
)

// DSN actions (RFC 3464 §2.3.3) the queue reports.
const (
	actionFailed  = "failed"
	actionDelayed = "delayed"
)

// dsnRecipient is one recipient's entry in a delivery status
// notification.
type dsnRecipient struct {
	addr        string
	action      string    // actionFailed or actionDelayed
	status      string    // enhanced status code, "5.1.1"
	remoteMTA   string    // "" when none
	diagnostic  string    // "smtp; 550 5.1.1 User unknown", "" when none
	lastAttempt time.Time // zero when none
	retryUntil  time.Time // for actionDelayed
}

// dsnInput is what a DSN is made of.
type dsnInput struct {
	hostname string         // the reporting MTA
	id       string         // the DSN's own queue id
	now      time.Time      // its Date
	orig     *smtp.Envelope // the original message's envelope
	header   []byte         // the original header section
	rcpts    []dsnRecipient
}

// buildDSN returns the envelope and the data of a delivery status
// notification (RFC 3464) to the original sender: a multipart/report
// (RFC 6522) with a human-readable explanation, a message/delivery-status
// part and the original header section (text/rfc822-headers). When an
// address is not ASCII it uses the RFC 6533 types instead
// (message/global-delivery-status, "utf-8" addresses,
// message/global-headers). The envelope has the null reverse-path, so
// that a DSN is never answered by another (RFC 5321 §4.5.5, RFC 3464
// §2.2). Its output depends only on in: the boundary is made from the id.
func buildDSN(in dsnInput) (*smtp.Envelope, []byte) {
	host := in.hostname
	if host == "" {
		host = "localhost"
	}
	global := !smtp.IsASCII(in.orig.From)
	for _, r := range in.rcpts {
		global = global || !smtp.IsASCII(r.addr)
	}
	header := bytes.TrimSuffix(in.header, []byte("\r\n"))
	if len(header) > 0 && !bytes.HasSuffix(header, []byte("\r\n")) {
		header = append(bytes.Clone(header), '\r', '\n')
	}
	eightBit := !smtp.IsASCII(string(header))
	failed := false
	for _, r := range in.rcpts {
		failed = failed || r.action == actionFailed
	}
	boundary := in.id + "/" + host

	var b bytes.Buffer
	hdr := func(name, value string) { writeField(&b, name, value) }
	hdr("From", "Mail Delivery System <MAILER-DAEMON@"+host+">")
	hdr("To", "<"+in.orig.From+">")
	if failed {
		hdr("Subject", "Undelivered Mail Returned to Sender")
	} else {
		hdr("Subject", "Delayed Mail (still being retried)")
	}
	hdr("Date", in.now.Format(time.RFC1123Z))
	hdr("Message-ID", "<"+in.id+"@"+host+">")
	hdr("Auto-Submitted", "auto-replied") // RFC 3834 §5
	hdr("MIME-Version", "1.0")
	b.WriteString("Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"" + boundary + "\"\r\n")
	b.WriteString("\r\nThis is a MIME-encapsulated message.\r\n\r\n")

	// Part 1: for people.
	fmt.Fprintf(&b, "--%s\r\n", boundary)
	b.WriteString("Content-Description: Notification\r\n")
	if global {
		b.WriteString("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	} else {
		b.WriteString("Content-Type: text/plain; charset=us-ascii\r\n\r\n")
	}
	writeExplanation(&b, host, in.rcpts, failed)

	// Part 2: for programs (RFC 3464 §2).
	fmt.Fprintf(&b, "--%s\r\n", boundary)
	b.WriteString("Content-Description: Delivery report\r\n")
	addrType := "rfc822"
	if global {
		b.WriteString("Content-Type: message/global-delivery-status\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
		addrType = "utf-8" // RFC 6533 §3
	} else {
		b.WriteString("Content-Type: message/delivery-status\r\n\r\n")
	}
	// RFC 3464 §2.2: extension fields come after the standard ones.
	hdr("Reporting-MTA", "dns; "+host)
	if !in.orig.ReceivedAt.IsZero() {
		hdr("Arrival-Date", in.orig.ReceivedAt.In(in.now.Location()).Format(time.RFC1123Z))
	}
	hdr("X-Postern-Queue-ID", in.orig.ID)
	for _, r := range in.rcpts {
		b.WriteString("\r\n")
		hdr("Final-Recipient", addrType+"; "+r.addr)
		hdr("Action", r.action)
		hdr("Status", r.status)
		if r.remoteMTA != "" {
			hdr("Remote-MTA", "dns; "+r.remoteMTA)
		}
		if r.diagnostic != "" {
			hdr("Diagnostic-Code", r.diagnostic)
		}
		if !r.lastAttempt.IsZero() {
			hdr("Last-Attempt-Date", r.lastAttempt.In(in.now.Location()).Format(time.RFC1123Z))
		}
		if r.action == actionDelayed && !r.retryUntil.IsZero() {
			hdr("Will-Retry-Until", r.retryUntil.In(in.now.Location()).Format(time.RFC1123Z))
		}
	}
	b.WriteString("\r\n")

	// Part 3: the original header section (RFC 6522 §4).
	fmt.Fprintf(&b, "--%s\r\n", boundary)
	b.WriteString("Content-Description: Undelivered message headers\r\n")
	if global {
		b.WriteString("Content-Type: message/global-headers\r\n") // RFC 6533 §6.3
	} else {
		b.WriteString("Content-Type: text/rfc822-headers\r\n")
	}
	if eightBit {
		b.WriteString("Content-Transfer-Encoding: 8bit\r\n")
	}
	b.WriteString("\r\n")
	b.Write(header)
	fmt.Fprintf(&b, "\r\n--%s--\r\n", boundary)

	body := "7BIT"
	if global || eightBit {
		body = "8BITMIME"
	}
	env := &smtp.Envelope{
		ID:         in.id,
		From:       "",
		Recipients: []string{in.orig.From},
		SMTPUTF8:   global,
		Body:       body,
		Listener:   "dsn",
		ReceivedAt: in.now,
	}
	return env, b.Bytes()
}

// writeExplanation writes the human-readable part of a DSN.
func writeExplanation(b *bytes.Buffer, host string, rcpts []dsnRecipient, failed bool) {
	fmt.Fprintf(b, "This is the mail system at host %s.\r\n\r\n", host)
	if failed {
		b.WriteString("Your message could not be delivered to one or more recipients.\r\n" +
			"Its header section is attached below.\r\n\r\n")
	} else {
		b.WriteString("Your message has not been delivered yet to one or more recipients.\r\n" +
			"The mail system keeps trying; you need not send it again.\r\n\r\n")
	}
	for _, r := range rcpts {
		switch {
		case r.action == actionDelayed && !r.retryUntil.IsZero():
			fmt.Fprintf(b, "<%s>: delayed, will be retried until %s\r\n", r.addr, r.retryUntil.UTC().Format(time.RFC1123Z))
		case r.action == actionDelayed:
			fmt.Fprintf(b, "<%s>: delayed\r\n", r.addr)
		case r.status == statusExpired:
			fmt.Fprintf(b, "<%s>: delivery time expired, the mail system gave up\r\n", r.addr)
		default:
			fmt.Fprintf(b, "<%s>: delivery failed\r\n", r.addr)
		}
		if r.diagnostic != "" {
			_, text, _ := strings.Cut(r.diagnostic, "; ")
			if r.remoteMTA != "" {
				fmt.Fprintf(b, "    %s said: %s\r\n", r.remoteMTA, text)
			} else {
				fmt.Fprintf(b, "    %s\r\n", text)
			}
		}
	}
	b.WriteString("\r\n")
}

// foldAt is the line length past which writeField folds (RFC 5322
// §2.1.1: lines SHOULD be at most 78 characters).
const foldAt = 78

// writeField writes the header field "name: value" and CRLF, folded
// before spaces so that lines stay within foldAt characters where the
// words allow (RFC 5322 §2.2.3). value must not contain CR or LF.
func writeField(b *bytes.Buffer, name, value string) {
	b.WriteString(name)
	b.WriteString(":")
	n := len(name) + 1
	for i, w := range strings.Split(value, " ") {
		if i > 0 && n+1+len(w) > foldAt && n > 1 {
			b.WriteString("\r\n")
			n = 0
		}
		b.WriteByte(' ')
		b.WriteString(w)
		n += 1 + len(w)
	}
	b.WriteString("\r\n")
}

// statusExpired is the DSN status of a recipient given up on because the
// message grew too old (RFC 3463 §3.5: X.4.7 delivery time expired).
const statusExpired = "4.4.7"

// maxDiagnostic bounds a Diagnostic-Code value, keeping the DSN's lines
// well under RFC 5322 §2.1.1's 998 octets.
const maxDiagnostic = 900

// diagnosticText turns an error or a reply text into one line fit for a
// header field: controls (CR and LF of multi-line replies included)
// become spaces, and the length is bounded at a rune boundary.
func diagnosticText(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxDiagnostic {
		cut := maxDiagnostic
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	return s
}

// headerSection returns the header section of msg (RFC 5322 §2.1).
func headerSection(msg []byte) []byte { return msg[:smtp.HeaderEnd(msg)] }
