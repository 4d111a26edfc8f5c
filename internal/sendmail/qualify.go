// Package sendmail implements what Postern's sendmail(8) command needs
// beyond printing: the parsing of its command line (args.go), the
// options and modes local programs expect; qualifying the bare names
// local programs use (root, www-data) in the message's address fields, and the SMTP
// dialogue of "sendmail -bs" on standard input and output. Cron,
// logwatch, unattended-upgrades, smartd (through mail(1)) and mdadm all
// mail bare names, as a local MTA has always accepted them. It also
// holds the server's side (local.go): signing and spooling what the
// command hands over the admin socket.
package sendmail

import (
	"bytes"
	"errors"
	"strings"

	"postern/internal/smtp"
)

// AddressFields are the header fields whose addresses QualifyHeader
// qualifies (RFC 5322 §3.6.2, §3.6.3).
var AddressFields = []string{"From", "Sender", "Reply-To", "To", "Cc", "Bcc"}

// maxLine is the longest header line allowed, CRLF excluded
// (RFC 5322 §2.1.1).
const maxLine = 998

// ErrLineTooLong means a header line would be longer than RFC 5322
// allows once its bare names are qualified.
var ErrLineTooLong = errors.New("sendmail: a header line is longer than 998 characters once its names are qualified")

// IsBareName reports whether s is a local part without a domain that
// qualifying completes: a dot-atom (RFC 5321 §4.1.2), ASCII or UTF-8
// (RFC 6531 §3.3), of at most 64 octets, such as "root" or "www-data".
func IsBareName(s string) bool {
	if s == "" || strings.ContainsAny(s, "@\"") {
		return false
	}
	_, err := smtp.ParseAddress(s+"@bare.invalid", true)
	return err == nil
}

// QualifyHeader returns hdr, a header section or a whole message (CRLF
// lines), with every
// bare name in the AddressFields given "@"+domain, and the addresses it
// made that way, in order. The header section ends at the first empty
// line: the body is not looked at. A field is rewritten only where a name is
// added: its folding, comments and display names stay as they were, so
// "From: root (Cron Daemon)" becomes "From: root@example.com (Cron
// Daemon)" and "To: Admin <root>" becomes "To: Admin <root@example.com>".
// Other fields, and items that are not a single word (a display name
// without an address), are left alone. It fails with ErrLineTooLong when
// a line would grow past 998 characters.
func QualifyHeader(hdr []byte, domain string) ([]byte, []string, error) {
	var out bytes.Buffer
	out.Grow(len(hdr) + 64)
	var made []string
	for len(hdr) > 0 {
		// One field: its first line and its continuation lines.
		end := fieldEnd(hdr)
		field := hdr[:end]
		hdr = hdr[end:]
		if string(field) == "\r\n" { // the end of the header section
			out.Write(field)
			out.Write(hdr)
			break
		}
		name, _, ok := bytes.Cut(field, []byte(":"))
		if !ok || !isAddressField(string(bytes.TrimRight(name, " \t"))) {
			out.Write(field)
			continue
		}
		value := field[len(name)+1:]
		nv, m := qualifyList(value, domain)
		if len(m) == 0 {
			out.Write(field)
			continue
		}
		made = append(made, m...)
		line := append(append(append([]byte(nil), name...), ':'), nv...)
		for _, l := range bytes.Split(line, []byte("\r\n")) {
			if len(l) > maxLine {
				return nil, nil, ErrLineTooLong
			}
		}
		out.Write(line)
	}
	return out.Bytes(), made, nil
}

// fieldEnd returns the length of the field at the start of hdr: through
// the CRLF of its last line, continuation lines (starting with SP or
// HTAB) included. An empty line is a field of its own.
func fieldEnd(hdr []byte) int {
	n := 0
	for n < len(hdr) {
		i := bytes.Index(hdr[n:], []byte("\r\n"))
		if i < 0 {
			return len(hdr)
		}
		n += i + 2
		if i == 0 && n == 2 { // the empty line
			return n
		}
		if n >= len(hdr) || (hdr[n] != ' ' && hdr[n] != '\t') {
			return n
		}
	}
	return n
}

func isAddressField(name string) bool {
	for _, f := range AddressFields {
		if strings.EqualFold(f, name) {
			return true
		}
	}
	return false
}

// item is what qualifyList learned about one address of a list.
type item struct {
	words    int  // runs of non-space text outside comments and angle brackets
	wordEnd  int  // offset just after the last of them
	at       bool // an "@" outside comments and quoted strings
	angle    int  // offset of the ">" of an angle-addr; -1 when none
	angleAt  bool // an "@" inside the angle-addr
	angleLen int  // non-space bytes inside the angle-addr
	angleEnd int  // offset just after the last of them
}

// qualifyList qualifies the bare names of an address list (RFC 5322
// §3.4), the value of a field: each address that is a single word
// without "@" ("root"), or an angle-addr without "@" ("<root>"), gets
// "@"+domain. Group names ("undisclosed-recipients:;") are left alone.
// It returns the new value and the addresses made.
func qualifyList(v []byte, domain string) ([]byte, []string) {
	var (
		inserts []int // offsets where "@"+domain goes
		made    []string
		it      = item{angle: -1}
		inWord  bool
		wordAt  int // start of the current item's last word
		inAngle bool
		angleAt int // offset just after the "<"
	)
	finish := func(group bool) {
		switch {
		case group: // a group's display name
		case it.angle >= 0:
			if !it.angleAt && it.angleLen > 0 {
				local := strings.TrimSpace(string(v[angleAt:it.angleEnd]))
				if IsBareName(local) {
					inserts = append(inserts, it.angleEnd)
					made = append(made, local+"@"+domain)
				}
			}
		case it.words == 1 && !it.at:
			local := string(v[wordAt:it.wordEnd])
			if IsBareName(local) {
				inserts = append(inserts, it.wordEnd)
				made = append(made, local+"@"+domain)
			}
		}
		it = item{angle: -1}
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '(':
			i = smtp.CommentEnd(v, i)
			inWord = false
			continue
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			inWord = false
			continue
		}
		if inAngle {
			switch c {
			case '>':
				inAngle = false
				it.angle = i
				continue
			case '@':
				it.angleAt = true
			case '"':
				i = skipQuoted(v, i)
			}
			it.angleLen++
			it.angleEnd = i + 1
			continue
		}
		switch c {
		case '<':
			inAngle, angleAt, inWord = true, i+1, false
		case ',':
			finish(false)
			inWord = false
		case ':':
			finish(true)
			inWord = false
		case ';':
			finish(false)
			inWord = false
		default:
			if !inWord {
				it.words++
				wordAt = i
				inWord = true
			}
			if c == '@' {
				it.at = true
			}
			if c == '"' {
				i = skipQuoted(v, i)
			}
			it.wordEnd = i + 1
		}
	}
	if !inAngle {
		finish(false)
	}
	if len(inserts) == 0 {
		return v, nil
	}
	out := make([]byte, 0, len(v)+len(inserts)*(len(domain)+1))
	prev := 0
	for _, at := range inserts {
		out = append(out, v[prev:at]...)
		out = append(out, '@')
		out = append(out, domain...)
		prev = at
	}
	return append(out, v[prev:]...), made
}

// skipQuoted returns the offset of the '"' that closes the quoted string
// opening at v[i], or len(v)-1 when it is not closed.
func skipQuoted(v []byte, i int) int {
	for i++; i < len(v); i++ {
		switch v[i] {
		case '\\':
			i++
		case '"':
			return i
		}
	}
	return len(v) - 1
}
