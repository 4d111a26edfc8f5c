package smtp

import (
	"crypto/tls"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// The header fields a server writes into the messages it takes: the
// Received trace field (RFC 5321 §4.4) and, on submission, the
// Message-ID and Date fields a message lacks (RFC 6409 §8). The SMTP
// session and local submission both build them here.

// Protocol returns the "with" value of Received for a session (RFC 3848;
// RFC 6531 §3.7.3 for SMTPUTF8 transactions): esmtp when the client said
// EHLO, tls when the session is encrypted, auth when the client logged
// in, utf8 for an SMTPUTF8 transaction.
func Protocol(esmtp, tls, auth, utf8 bool) string {
	if !esmtp {
		return "SMTP"
	}
	switch {
	case utf8 && tls && auth:
		return "UTF8SMTPSA"
	case utf8 && tls:
		return "UTF8SMTPS"
	case utf8 && auth:
		return "UTF8SMTPA"
	case utf8:
		return "UTF8SMTP"
	case tls && auth:
		return "ESMTPSA"
	case tls:
		return "ESMTPS"
	case auth:
		return "ESMTPA"
	}
	return "ESMTP"
}

// Received is what a Received header field records.
type Received struct {
	// Helo is the name the client gave in EHLO or HELO, and Remote its
	// address: the "from" clause. With neither (a local submission)
	// there is no "from" clause.
	Helo   string
	Remote netip.AddrPort
	// Host is this server's name: the "by" clause.
	Host string
	// Local, when not "", says who submitted a message that came from
	// no network client, in the comment after "by": "from userid 1000"
	// gives "(Postern, from userid 1000)".
	Local string
	// Protocol is the "with" clause (see Protocol); "" for none.
	Protocol string
	// ID is the queue id: the "id" clause.
	ID string
	// TLS, when not nil, puts the protocol version and cipher suite in
	// a comment.
	TLS *tls.ConnectionState
	// For is the recipient when there is exactly one: the "for"
	// clause; "" for none.
	For string
	// Date is when the message was received.
	Date time.Time
}

// MaxHeloInReceived bounds the client's name as copied into Received.
const MaxHeloInReceived = 255

// AppendReceived appends a Received header field (RFC 5321 §4.4) to dst:
//
//	Received: from HELO ([IP]) by HOST (Postern) with PROTO id ID
//		(TLS1.3 TLS_AES_128_GCM_SHA256) for <rcpt>; DATE
//
// folded before a clause that would pass 78 characters (RFC 5322
// §2.1.1). The client's name is hostile: only its printable ASCII goes
// in, without the characters that would confuse a parser of the field.
func AppendReceived(dst []byte, r Received) []byte {
	f := folder{b: dst, start: len(dst)}
	f.b = append(f.b, "Received:"...)
	if ip := r.Remote.Addr(); r.Helo != "" || ip.IsValid() {
		f.word("from ", sanitizeHelo(r.Helo))
		if ip.IsValid() {
			var lit [64]byte
			f.wordBytes(appendAddressLiteral(lit[:0], ip))
		}
	}
	f.word("by ", r.Host)
	if r.Local != "" {
		f.word("(Postern, ", r.Local, ")")
	} else {
		f.word("(Postern)")
	}
	if r.Protocol != "" {
		f.word("with ", r.Protocol)
	}
	if r.TLS == nil && r.For == "" {
		f.reserve = 1
	}
	f.word("id ", r.ID)
	if r.TLS != nil {
		if r.For == "" {
			f.reserve = 1
		}
		f.word("(", strings.ReplaceAll(tls.VersionName(r.TLS.Version), " ", ""), " ",
			tls.CipherSuiteName(r.TLS.CipherSuite), ")")
	}
	if r.For != "" {
		f.reserve = 1 // for the ";" after the last clause
		f.word("for <", r.For, ">")
	}
	f.b = append(f.b, ';')
	f.reserve = 0
	var date [64]byte
	f.wordBytes(r.Date.AppendFormat(date[:0], time.RFC1123Z))
	f.b = append(f.b, "\r\n"...)
	return f.b
}

// LocalUser returns Received.Local for a message submitted by the Unix
// user uid: "from userid UID", or "from userid unknown" for a negative
// uid.
func LocalUser(uid int) string {
	if uid < 0 {
		return "from userid unknown"
	}
	return "from userid " + strconv.Itoa(uid)
}

// folder appends words to a header field, folding (CRLF TAB) before a
// word that would make the line longer than 78 characters (RFC 5322 §2.1.1).
type folder struct {
	b       []byte
	start   int // offset in b of the current line
	reserve int // characters the next word must leave room for
}

// word appends the concatenation of parts as one word.
func (f *folder) word(parts ...string) {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	f.space(n)
	for _, p := range parts {
		f.b = append(f.b, p...)
	}
}

// wordBytes appends w as one word.
func (f *folder) wordBytes(w []byte) {
	f.space(len(w))
	f.b = append(f.b, w...)
}

// space appends the space or the fold before a word of n characters.
func (f *folder) space(n int) {
	if len(f.b)-f.start+1+n+f.reserve > 78 {
		f.b = append(f.b, "\r\n\t"...)
		f.start = len(f.b) - 1
	} else {
		f.b = append(f.b, ' ')
	}
}

// appendAddressLiteral appends ip as an RFC 5321 §4.1.3 address
// literal, in parentheses (a TCP-info comment, RFC 5321 §4.4).
func appendAddressLiteral(dst []byte, ip netip.Addr) []byte {
	if ip.Is4() {
		dst = append(dst, "(["...)
	} else {
		dst = append(dst, "([IPv6:"...)
	}
	dst = ip.AppendTo(dst)
	return append(dst, "])"...)
}

// sanitizeHelo keeps the printable ASCII of the client's name, without
// the characters that would confuse a Received parser, and bounds it.
func sanitizeHelo(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if !heloByte(s[i]) {
			clean = false
			break
		}
	}
	if clean && s != "" && len(s) <= MaxHeloInReceived {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < MaxHeloInReceived; i++ {
		if heloByte(s[i]) {
			b.WriteByte(s[i])
		}
	}
	if b.Len() == 0 {
		return "unknown"
	}
	return b.String()
}

func heloByte(c byte) bool {
	return c > ' ' && c < 0x7f && c != '(' && c != ')' && c != ';' && c != '\\'
}

// HeaderRepair says which of the fields a submission server adds to a
// message that lacks them (RFC 6409 §8) the message lacks.
type HeaderRepair struct {
	// MessageID is set when the message has no Message-ID field (RFC
	// 6409 §8.3).
	MessageID bool
	// Date is set when the message has no Date field (RFC 6409 §8.1).
	Date bool
}

// CheckHeader returns the repair the header section hdr needs (hdr may
// be the whole message).
func CheckHeader(hdr []byte) HeaderRepair {
	return HeaderRepair{
		MessageID: CountFields(hdr, "Message-ID") == 0,
		Date:      CountFields(hdr, "Date") == 0,
	}
}

// Append appends the missing fields to dst: "Message-ID: <ID@HOST>" with
// the queue id, and the Date now (RFC 5322 §3.3).
func (r HeaderRepair) Append(dst []byte, id, host string, now time.Time) []byte {
	if r.MessageID { // RFC 6409 §8.3
		dst = append(dst, "Message-ID: <"...)
		dst = append(dst, id...)
		dst = append(dst, '@')
		dst = append(dst, host...)
		dst = append(dst, ">\r\n"...)
	}
	if r.Date { // RFC 6409 §8.1, RFC 5322 §3.3
		dst = append(dst, "Date: "...)
		dst = now.AppendFormat(dst, time.RFC1123Z)
		dst = append(dst, "\r\n"...)
	}
	return dst
}
