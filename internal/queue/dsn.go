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
	actionFailed    = "failed"
	actionDelayed   = "delayed"
	actionDelivered = "delivered" // a local mailbox took it (RFC 3461 §5.2.3)
	actionRelayed   = "relayed"   // a next hop without DSN took it (RFC 3461 §5.2.2)
	actionExpanded  = "expanded"  // an alias sent it on to several addresses (RFC 3461 §6.2.7.3)
)

// dsnRecipient is one recipient's entry in a delivery status
// notification.
type dsnRecipient struct {
	addr        string
	orcpt       string    // ORCPT, "addr-type;address" (smtp.RcptDSN); "" when none
	action      string    // actionFailed, actionDelayed, actionDelivered, actionRelayed or actionExpanded
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
	// full is the whole original message when the notice returns it
	// (RET=FULL on a failure, RFC 3461 §4.3); nil returns the header
	// section only.
	full  []byte
	rcpts []dsnRecipient
}

// buildDSN returns the envelope and the data of a delivery status
// notification (RFC 3464) to the original sender: a multipart/report
// (RFC 6522) with a human-readable explanation, a message/delivery-status
// part and the original header section (text/rfc822-headers), or the
// whole message (message/rfc822) when in.full is set. When an address is
// not ASCII it uses the RFC 6533 types instead
// (message/global-delivery-status, "utf-8" addresses,
// message/global-headers, message/global). The sender's ENVID and each
// recipient's ORCPT come back as Original-Envelope-Id and
// Original-Recipient (RFC 3464 §2.2.1, §2.3.1). The envelope has the null reverse-path, so
// that a DSN is never answered by another (RFC 5321 §4.5.5, RFC 3464
// §2.2). Its output depends only on in: the boundary is made from the id.
func buildDSN(in dsnInput) (*smtp.Envelope, []byte) {
	host := in.hostname
	if host == "" {
		host = "localhost"
	}
	global := !smtp.IsASCII(in.orig.From)
	for _, r := range in.rcpts {
		global = global || !smtp.IsASCII(r.addr) || !smtp.IsASCII(r.orcpt)
	}
	header := bytes.TrimSuffix(in.header, []byte("\r\n"))
	if len(header) > 0 && !bytes.HasSuffix(header, []byte("\r\n")) {
		header = append(bytes.Clone(header), '\r', '\n')
	}
	returned := header
	if in.full != nil {
		returned = in.full
	}
	eightBit := !smtp.IsASCII(string(returned))
	kind := noticeKind(in.rcpts)
	boundary := in.id + "/" + host

	var b bytes.Buffer
	hdr := func(name, value string) { writeField(&b, name, value) }
	hdr("From", "Mail Delivery System <MAILER-DAEMON@"+host+">")
	hdr("To", "<"+in.orig.From+">")
	switch kind {
	case actionFailed:
		hdr("Subject", "Undelivered Mail Returned to Sender")
	case actionDelayed:
		hdr("Subject", "Delayed Mail (still being retried)")
	default:
		hdr("Subject", "Successful Mail Delivery Report")
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
	writeExplanation(&b, host, in.rcpts, kind, in.full != nil)

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
	if in.orig.EnvID != "" {
		hdr("Original-Envelope-Id", in.orig.EnvID) // RFC 3464 §2.2.1
	}
	hdr("Reporting-MTA", "dns; "+host)
	if !in.orig.ReceivedAt.IsZero() {
		hdr("Arrival-Date", in.orig.ReceivedAt.In(in.now.Location()).Format(time.RFC1123Z))
	}
	hdr("X-Postern-Queue-ID", in.orig.ID)
	for _, r := range in.rcpts {
		b.WriteString("\r\n")
		if r.orcpt != "" {
			hdr("Original-Recipient", r.orcpt) // RFC 3464 §2.3.1
		}
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

	// Part 3: the original message or its header section (RFC 6522 §4).
	fmt.Fprintf(&b, "--%s\r\n", boundary)
	switch {
	case in.full != nil:
		b.WriteString("Content-Description: Undelivered message\r\n")
		if global {
			b.WriteString("Content-Type: message/global\r\n") // RFC 6532 §3.7
		} else {
			b.WriteString("Content-Type: message/rfc822\r\n")
		}
	case kind == actionFailed || kind == actionDelayed:
		b.WriteString("Content-Description: Undelivered message headers\r\n")
	default:
		b.WriteString("Content-Description: Message headers\r\n")
	}
	if in.full == nil {
		if global {
			b.WriteString("Content-Type: message/global-headers\r\n") // RFC 6533 §6.3
		} else {
			b.WriteString("Content-Type: text/rfc822-headers\r\n")
		}
	}
	if eightBit {
		b.WriteString("Content-Transfer-Encoding: 8bit\r\n")
	}
	b.WriteString("\r\n")
	b.Write(returned)
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

// noticeKind returns what a DSN mainly reports, for its subject and
// explanation: actionFailed when a recipient failed, else actionDelayed
// when one is delayed, else actionDelivered (success notices).
func noticeKind(rcpts []dsnRecipient) string {
	kind := actionDelivered
	for _, r := range rcpts {
		switch r.action {
		case actionFailed:
			return actionFailed
		case actionDelayed:
			kind = actionDelayed
		}
	}
	return kind
}

// writeExplanation writes the human-readable part of a DSN of the given
// kind (noticeKind); full says whether the whole message is attached.
func writeExplanation(b *bytes.Buffer, host string, rcpts []dsnRecipient, kind string, full bool) {
	fmt.Fprintf(b, "This is the mail system at host %s.\r\n\r\n", host)
	switch {
	case kind == actionFailed && full:
		b.WriteString("Your message could not be delivered to one or more recipients.\r\n" +
			"It is attached below.\r\n\r\n")
	case kind == actionFailed:
		b.WriteString("Your message could not be delivered to one or more recipients.\r\n" +
			"Its header section is attached below.\r\n\r\n")
	case kind == actionDelayed:
		b.WriteString("Your message has not been delivered yet to one or more recipients.\r\n" +
			"The mail system keeps trying; you need not send it again.\r\n\r\n")
	default:
		b.WriteString("Your message was delivered to the recipients below, as you asked to be told.\r\n\r\n")
	}
	for _, r := range rcpts {
		switch {
		case r.action == actionDelivered:
			fmt.Fprintf(b, "<%s>: delivered to the mailbox\r\n", r.addr)
			continue
		case r.action == actionRelayed:
			fmt.Fprintf(b, "<%s>: handed to %s, which sends no notices of its own\r\n", r.addr, r.remoteMTA)
			continue
		case r.action == actionExpanded:
			fmt.Fprintf(b, "<%s>: delivered to the alias, which sent it on to several addresses\r\n"+
				"    (their own deliveries are not reported as successes)\r\n", r.addr)
			continue
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
