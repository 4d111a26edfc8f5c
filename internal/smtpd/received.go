package smtpd

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/base32"
	"encoding/binary"
	"net/netip"
	"strings"
	"time"
)

// newID returns a queue id: 8 bytes of big-endian Unix nanoseconds and 4
// random bytes in base32 without padding, lower-cased: 20 characters.
// It uses the "extended hex" alphabet (RFC 4648 §7), whose order is the
// order of the values, so ids sort by time as strings do.
func newID(t time.Time) string {
	var b [12]byte
	binary.BigEndian.PutUint64(b[:8], uint64(t.UnixNano()))
	rand.Read(b[8:])
	var out [24]byte // base32.HexEncoding.EncodedLen(12), with "====" padding
	base32.HexEncoding.Encode(out[:], b[:])
	for i, c := range out[:20] {
		if 'A' <= c && c <= 'Z' {
			out[i] = c + 'a' - 'A'
		}
	}
	return string(out[:20])
}

// protocol returns the "with" value of Received (RFC 3848; RFC 6531
// §3.7.3 for SMTPUTF8 transactions).
func protocol(esmtp, tls, auth, utf8 bool) string {
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

// receivedInfo is what goes into a Received header.
type receivedInfo struct {
	helo   string
	remote netip.AddrPort
	host   string
	proto  string
	id     string
	tls    *tls.ConnectionState
	rcpt   string // "" unless there is exactly one recipient
	date   time.Time
}

// maxHeloInReceived bounds the client's name as copied into Received.
const maxHeloInReceived = 255

// appendReceived appends a Received header field (RFC 5321 §4.4) to dst:
//
//	Received: from HELO ([IP]) by HOST (Postern) with PROTO id ID
//		(TLS1.3 TLS_AES_128_GCM_SHA256) for <rcpt>; DATE
//
// folded before a clause that would pass 78 characters.
func appendReceived(dst []byte, r receivedInfo) []byte {
	f := folder{b: dst, start: len(dst)}
	f.b = append(f.b, "Received:"...)
	f.word("from ", sanitizeHelo(r.helo))
	if ip := r.remote.Addr(); ip.IsValid() {
		var lit [64]byte
		f.wordBytes(appendAddressLiteral(lit[:0], ip))
	}
	f.word("by ", r.host)
	f.word("(Postern)")
	f.word("with ", r.proto)
	if r.tls == nil && r.rcpt == "" {
		f.reserve = 1
	}
	f.word("id ", r.id)
	if r.tls != nil {
		if r.rcpt == "" {
			f.reserve = 1
		}
		f.word("(", strings.ReplaceAll(tls.VersionName(r.tls.Version), " ", ""), " ",
			tls.CipherSuiteName(r.tls.CipherSuite), ")")
	}
	if r.rcpt != "" {
		f.reserve = 1 // for the ";" after the last clause
		f.word("for <", r.rcpt, ">")
	}
	f.b = append(f.b, ';')
	f.reserve = 0
	var date [64]byte
	f.wordBytes(r.date.AppendFormat(date[:0], time.RFC1123Z))
	f.b = append(f.b, "\r\n"...)
	return f.b
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
	if clean && s != "" && len(s) <= maxHeloInReceived {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < maxHeloInReceived; i++ {
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
