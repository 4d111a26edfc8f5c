package testkit

import (
	"bufio"
	"bytes"
	"strings"
)

// ReadDotData reads what a client sent after 354, as a test server
// does, up to the line "." that ends it: raw is every byte as sent (the
// final ".\r\n" included), data the content with the leading dots of
// dot-stuffed lines removed. It is lenient, unlike smtp.ReadData: a
// test server records what it got, whatever the line endings. ok is
// false when the connection ended first.
func ReadDotData(br *bufio.Reader) (raw, data []byte, ok bool) {
	var r, d bytes.Buffer
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			return r.Bytes(), d.Bytes(), false
		}
		r.WriteString(l)
		if l == ".\r\n" {
			return r.Bytes(), d.Bytes(), true
		}
		d.WriteString(strings.TrimPrefix(l, "."))
	}
}

// ReadCommand reads one command line, as a test server does: line is
// the line without its CRLF (or LF), verb its first word in upper case,
// arg the rest after the first space. err is the read's error.
func ReadCommand(br *bufio.Reader) (line, verb, arg string, err error) {
	line, err = br.ReadString('\n')
	if err != nil {
		return "", "", "", err
	}
	line = strings.TrimRight(line, "\r\n")
	verb, arg, _ = strings.Cut(line, " ")
	return line, strings.ToUpper(verb), arg, nil
}
