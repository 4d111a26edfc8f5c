package sendmail

// The message postern sendmail hands to the server: read from standard
// input with any line ends, made CRLF, and prepared as the command line
// says (-t, -F, -i, bare names).

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"slices"
	"strings"

	"postern/internal/smtp"
)

// ReadMessage reads a message from r and returns it with CRLF line
// endings: a bare LF or a bare CR ends a line too. Unless ignoreDots, a
// line holding a single "." ends the message (and is not part of it).
// More than max bytes is an error.
func ReadMessage(r io.Reader, ignoreDots bool, max int64) ([]byte, error) {
	in, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(in)) > max {
		return nil, fmt.Errorf("message bigger than %d bytes", max)
	}
	out := make([]byte, 0, len(in)+len(in)/40+2)
	for len(in) > 0 {
		var line []byte
		i := bytes.IndexAny(in, "\r\n")
		if i < 0 {
			line, in = in, nil
		} else {
			line = in[:i]
			if in[i] == '\r' && i+1 < len(in) && in[i+1] == '\n' {
				in = in[i+2:]
			} else {
				in = in[i+1:]
			}
		}
		if !ignoreDots && string(line) == "." {
			break
		}
		out = append(out, line...)
		out = append(out, "\r\n"...)
	}
	return out, nil
}

// PrepareOptions are what the command line says about a message.
type PrepareOptions struct {
	Recipients []string // of the command line
	Extract    bool     // -t: the recipients of To, Cc and Bcc too
	FullName   string   // -F: the sender's name in an added From field
	Sender     string   // the From field's address when there is none; "" adds none
	Domain     string   // qualifies bare names
}

// Prepare applies -t and -F to msg (CRLF lines), and qualifies bare
// names with o.Domain: in the address fields of the header
// (QualifyHeader) and among the recipients. With o.Extract, the
// recipients of To, Cc and Bcc are added to those of the command line
// and the Bcc fields are removed; a From field is added when there is
// none. It returns the message, the recipients, and those of them that
// were bare names.
func Prepare(msg []byte, o PrepareOptions) (data []byte, rcpts, bare []string, err error) {
	sender, domain := o.Sender, o.Domain
	end := smtp.HeaderEnd(msg)
	hdr, body := msg[:end], msg[end:]
	if len(msg) > 0 && !isFieldLine(msg) {
		// No header section at all: the whole input is the body.
		hdr, body = nil, append([]byte("\r\n"), msg...)
	}
	hdr, made, err := QualifyHeader(hdr, domain)
	if err != nil {
		return nil, nil, nil, err
	}
	for _, r := range o.Recipients {
		if IsBareName(r) {
			r += "@" + domain
			bare = append(bare, r)
		}
		rcpts = append(rcpts, r)
	}
	if o.Extract {
		for _, name := range []string{"To", "Cc", "Bcc"} {
			for _, v := range smtp.HeaderValues(hdr, name) {
				if strings.TrimSpace(v) == "" {
					continue
				}
				list, err := mail.ParseAddressList(v)
				if err != nil {
					return nil, nil, nil, fmt.Errorf("%s: %w", name, err)
				}
				for _, a := range list {
					rcpts = append(rcpts, a.Address)
					if slices.ContainsFunc(made, func(m string) bool { return strings.EqualFold(m, a.Address) }) {
						bare = append(bare, a.Address)
					}
				}
			}
		}
		hdr = removeField(hdr, "Bcc")
	}
	if len(smtp.HeaderValues(hdr, "From")) == 0 && sender != "" {
		from := (&mail.Address{Name: o.FullName, Address: sender}).String()
		if o.FullName == "" {
			from = sender
		} else if !smtp.IsASCII(o.FullName) {
			from = mime.QEncoding.Encode("utf-8", o.FullName) + " <" + sender + ">"
		}
		hdr = append([]byte("From: "+from+"\r\n"), hdr...)
	}
	out := make([]byte, 0, len(hdr)+len(body))
	return append(append(out, hdr...), body...), rcpts, bare, nil
}

// removeField removes every field named name (with its folded lines)
// from the header section hdr.
func removeField(hdr []byte, name string) []byte {
	out := make([]byte, 0, len(hdr))
	skip := false
	for len(hdr) > 0 {
		i := bytes.Index(hdr, []byte("\r\n"))
		line := hdr
		if i >= 0 {
			line = hdr[:i+2]
		}
		hdr = hdr[len(line):]
		if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
			if !skip {
				out = append(out, line...)
			}
			continue
		}
		n, _, _ := bytes.Cut(line, []byte(":"))
		skip = strings.EqualFold(strings.TrimSpace(string(n)), name)
		if !skip {
			out = append(out, line...)
		}
	}
	return out
}

// isFieldLine reports whether msg starts with a header field: a name of
// printable ASCII without ':' and then ':' (RFC 5322 §2.2).
func isFieldLine(msg []byte) bool {
	for i, c := range msg {
		switch {
		case c == ':':
			return i > 0
		case c < 33 || c > 126:
			return false
		}
	}
	return false
}
