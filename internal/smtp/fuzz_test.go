package smtp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"
)

// fuzzSource returns a bufio.Reader over data with a buffer of 16+size
// bytes (16+64*(size-128) from 128 on), reading one byte at a time when
// size is odd, so that the fuzzer varies how lines are cut into chunks.
func fuzzSource(data []byte, size uint8) *bufio.Reader {
	var src io.Reader = bytes.NewReader(data)
	if size%2 == 1 {
		src = iotest.OneByteReader(src)
	}
	n := 16 + int(size)
	if size >= 128 {
		n = 16 + 64*int(size-128)
	}
	return bufio.NewReaderSize(src, n)
}

// refReadLine is a model of ReadLine that sees the whole input at once.
func refReadLine(data []byte, max int) (line []byte, err error, rest []byte) {
	i := bytes.IndexByte(data, '\n')
	if i < 0 {
		if len(data) == 0 {
			return nil, io.EOF, nil
		}
		return nil, io.ErrUnexpectedEOF, nil
	}
	seg, rest := data[:i+1], data[i+1:]
	n := len(seg)
	switch {
	case n > max:
		return nil, ErrLineTooLong, rest
	case bytes.IndexByte(seg[:n-1], '\r') >= 0 && bytes.IndexByte(seg[:n-1], '\r') != n-2:
		return nil, ErrBareCR, rest
	case n < 2 || seg[n-2] != '\r':
		return nil, ErrBareLF, rest
	case bytes.IndexByte(seg, 0) >= 0:
		return nil, ErrNUL, rest
	}
	return seg[:n-2], nil, rest
}

func FuzzReadLine(f *testing.F) {
	for _, s := range []string{
		"EHLO x\r\n", "A\nB\r\n", "A\rB\r\n", "A\r", "\r\n\r\n", "A\x00\r\nB\r\n",
		"DATA\n.\r\nQUIT\r\n", strings.Repeat("x", 600) + "\r\nQUIT\r\n", "x\r\r\n", "\n",
	} {
		f.Add([]byte(s), uint16(512), uint8(0))
		f.Add([]byte(s), uint16(20), uint8(1))
	}
	f.Fuzz(func(t *testing.T, data []byte, max uint16, size uint8) {
		m := int(max)
		r := NewReader(fuzzSource(data, size))
		model := data
		for range len(data) + 1 {
			line, err := r.ReadLine(m)
			wantLine, wantErr, rest := refReadLine(model, m)
			model = rest
			if err != wantErr || !bytes.Equal(line, wantLine) {
				t.Fatalf("ReadLine = %q, %v; model says %q, %v", line, err, wantLine, wantErr)
			}
			if len(r.buf) > m {
				t.Fatalf("ReadLine buffered %d bytes for max %d", len(r.buf), m)
			}
			if err == nil && (len(line)+2 > m || bytes.ContainsAny(line, "\r\n\x00")) {
				t.Fatalf("ReadLine returned a bad line %q for max %d", line, m)
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return
			}
		}
		t.Fatal("ReadLine made no progress")
	})
}

// refReadData is a model of ReadData that sees the whole input at once,
// one line at a time. It returns the message, the error and the input
// that follows the terminator.
func refReadData(data []byte, lim DataLimits) ([]byte, error, []byte) {
	maxLine := lim.MaxLine
	if maxLine <= 0 {
		maxLine = MaxTextLine
	}
	var out []byte
	var firstErr error
	clean := true
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			return out, io.ErrUnexpectedEOF, nil
		}
		line := data[:i+1]
		data = data[i+1:]
		n := len(line)
		if clean && string(line) == ".\r\n" {
			return out, firstErr, data
		}
		clean = n >= 2 && line[n-2] == '\r'
		if firstErr != nil {
			continue
		}
		cr := bytes.IndexByte(line, '\r')
		text := line
		if text[0] == '.' {
			text = text[1:]
		}
		switch {
		case n > maxLine:
			firstErr = ErrLineTooLong
		case cr >= 0 && cr != n-2:
			firstErr = ErrBareCR
		case !clean:
			firstErr = ErrBareLF
		case bytes.IndexByte(line, 0) >= 0:
			firstErr = ErrNUL
		case lim.MaxSize > 0 && int64(len(out)+len(text)) > lim.MaxSize:
			firstErr = ErrTooBig
		default:
			out = append(out, text...)
		}
	}
}

// stuff dot-stuffs msg (RFC 5321 §4.5.2) and adds the terminator.
func stuff(msg []byte) []byte {
	var b []byte
	for line := range bytes.SplitAfterSeq(msg, []byte("\r\n")) {
		if len(line) > 0 && line[0] == '.' {
			b = append(b, '.')
		}
		b = append(b, line...)
	}
	return append(b, ".\r\n"...)
}

// canonicalStuffing reports whether every line of the stuffed message
// data that starts with a dot, but for the terminator, starts with two.
func canonicalStuffing(data []byte) bool {
	for line := range bytes.SplitAfterSeq(data, []byte("\r\n")) {
		if len(line) > 0 && line[0] == '.' && string(line) != ".\r\n" && (len(line) < 2 || line[1] != '.') {
			return false
		}
	}
	return true
}

func FuzzReadData(f *testing.F) {
	for _, s := range []string{
		".\r\n",
		"Subject: x\r\n\r\nbody\r\n.\r\n",
		"..\r\n..x\r\n.\r\nQUIT\r\n",
		"a\n.\nMAIL FROM:<x@y>\r\n.\r\n",
		"a\r\n.\nb\r\n.\r\n",
		"a\n.\r\nb\r\n.\r\n",
		"a\r.\rb\r\n.\r\n",
		"a\x00b\r\n.\r\n.\r\n",
		strings.Repeat("x", 1001) + "\r\n.\r\n",
		strings.Repeat("y", 15) + "\r\n.\r\n",
		"first\r\n.\r\nsecond\r\n.\r\n",
		"no end\r\n",
	} {
		f.Add([]byte(s), uint16(0), uint16(0), uint8(0))
		f.Add([]byte(s), uint16(10), uint16(20), uint8(1))
		f.Add([]byte(strings.Repeat("line\r\n", 40)+s), uint16(300), uint16(0), uint8(200))
	}
	f.Fuzz(func(t *testing.T, data []byte, maxSize, maxLine uint16, size uint8) {
		lim := DataLimits{MaxSize: int64(maxSize), MaxLine: int(maxLine)}
		br := fuzzSource(data, size)
		model := data
		for range len(data) + 1 {
			var dst bytes.Buffer
			dst.WriteString("Hdr\r\n") // ReadData appends; MaxSize counts what it appends
			err := ReadData(br, &dst, lim)
			got := dst.Bytes()[5:]
			want, wantErr, rest := refReadData(model, lim)
			if err != wantErr || !bytes.Equal(got, want) {
				t.Fatalf("ReadData = %q, %v; model says %q, %v", got, err, want, wantErr)
			}
			if lim.MaxSize > 0 && int64(len(got)) > lim.MaxSize {
				t.Fatalf("ReadData appended %d bytes, MaxSize %d", len(got), lim.MaxSize)
			}
			if err == io.ErrUnexpectedEOF {
				return
			}
			consumed := model[:len(model)-len(rest)]
			model = rest
			if err != nil {
				continue
			}
			if bytes.Contains(bytes.ReplaceAll(got, []byte("\r\n"), nil), []byte("\r")) ||
				bytes.Contains(bytes.ReplaceAll(got, []byte("\r\n"), nil), []byte("\n")) ||
				bytes.IndexByte(got, 0) >= 0 {
				t.Fatalf("message %q has a bare CR, bare LF or NUL", got)
			}
			// Stuffing gives back the input when the client stuffed as
			// RFC 5321 §4.5.2 says (".x" is taken as "x" but never sent).
			if canonicalStuffing(consumed) && !bytes.Equal(stuff(got), consumed) {
				t.Fatalf("stuffed message %q differs from the input read %q", stuff(got), consumed)
			}
		}
		t.Fatal("ReadData made no progress")
	})
}

func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{"EHLO x", "quit", "MAIL FROM:<a@b>", "", " x", "ABCDEFGHIJKLMNOPQ", "X\x00", "StartTLS "} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		cmd, err := ParseCommand(line)
		if err != nil {
			if code(err) != "500 5.5.2" {
				t.Fatalf("ParseCommand(%q) error %v", line, err)
			}
			return
		}
		v := cmd.Verb
		if len(v) < 1 || len(v) > 16 || strings.Trim(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
			t.Fatalf("ParseCommand(%q) verb %q", line, v)
		}
		if !asciiEqualFold(string(line[:len(v)]), v) {
			t.Fatalf("ParseCommand(%q) verb %q is not the line's", line, v)
		}
		if len(line) == len(v) {
			if cmd.Arg != "" {
				t.Fatalf("ParseCommand(%q) arg %q", line, cmd.Arg)
			}
		} else if line[len(v)] != ' ' || cmd.Arg != string(line[len(v)+1:]) {
			t.Fatalf("ParseCommand(%q) = %+v", line, cmd)
		}
	})
}

// checkAddress checks the invariants of a parsed address: no control
// characters, the RFC 5321 §4.5.3.1 limits, ASCII unless utf8, and a
// round trip through String and ParseAddress.
func checkAddress(t *testing.T, a Address, utf8ok bool) {
	t.Helper()
	s := a.String()
	for _, part := range []string{a.Local, a.Domain} {
		if strings.ContainsFunc(part, func(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }) {
			t.Fatalf("address %q holds a control character", s)
		}
		if !utf8.ValidString(part) || (!utf8ok && hasNonASCII(part)) {
			t.Fatalf("address %q: non-ASCII or invalid UTF-8 (utf8 %v)", s, utf8ok)
		}
	}
	if a.Domain == "" || len(a.Domain) > maxDomain {
		t.Fatalf("address %q: bad domain length", s)
	}
	if at := strings.LastIndexByte(s, '@'); at > maxLocal {
		t.Fatalf("address %q: local part of %d octets", s, at)
	}
	b, err := ParseAddress(s, utf8ok)
	if err != nil || b != a {
		t.Fatalf("ParseAddress(%q) = %+v, %v; want %+v", s, b, err, a)
	}
	if b.String() != s {
		t.Fatalf("String is not stable: %q then %q", s, b.String())
	}
}

func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{
		"a@b.c", `"a b"@b.c`, `"a\"\\b"@b.c`, `""@x`, "a@[192.0.2.1]", "a@[IPv6:2001:db8::1]",
		"a@[IPv6:::ffff:a0a:a0a]", "jörg@bücher.de", "a..b@c", ".a@b", "a@-b.c", "a@b_c", "\xff@b",
		strings.Repeat("a", 64) + "@b", "a@" + strings.Repeat("b.", 127) + "c",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, s string, utf8ok bool) {
		a, err := ParseAddress(s, utf8ok)
		if err != nil {
			if c := code(err); c != "501 5.1.3" && c != "553 5.6.7" {
				t.Fatalf("ParseAddress(%q) error %v", s, err)
			}
			if c := code(err); c == "553 5.6.7" && (utf8ok || !hasNonASCII(s)) {
				t.Fatalf("ParseAddress(%q, %v) = %v", s, utf8ok, err)
			}
			return
		}
		if len(s) > maxLocal+1+maxDomain+2 {
			t.Fatalf("ParseAddress accepted %d octets", len(s))
		}
		checkAddress(t, a, utf8ok)
	})
}

// pathArg rebuilds the argument of MAIL or RCPT from its parse.
func pathArg(keyword string, p Path, params Params) string {
	var b strings.Builder
	b.WriteString(keyword + "<")
	if !p.Null {
		b.WriteString(p.Addr.String())
	}
	b.WriteString(">")
	for _, k := range slices.Sorted(maps.Keys(params)) {
		b.WriteString(" " + k)
		if v := params[k]; v != "" {
			b.WriteString("=" + v)
		}
	}
	return b.String()
}

// fuzzPath checks ParseMailFrom or ParseRcptTo on one argument.
func fuzzPath(t *testing.T, rcpt bool, arg string, utf8ok bool) {
	parse, keyword, enh := ParseMailFrom, "FROM:", "5.1.7"
	if rcpt {
		parse, keyword, enh = ParseRcptTo, "TO:", "5.1.3"
	}
	p, params, err := parse(arg, utf8ok)
	if err != nil {
		switch code(err) {
		case "501 5.5.4", "501 " + enh, "553 5.6.7":
		default:
			t.Fatalf("parse(%q) error %v", arg, err)
		}
		if params != nil || p != (Path{}) {
			t.Fatalf("parse(%q) returned %+v %v with %v", arg, p, params, err)
		}
		return
	}
	if params == nil {
		t.Fatalf("parse(%q) returned nil Params", arg)
	}
	_, hasUTF8 := params["SMTPUTF8"]
	allow := utf8ok && (rcpt || hasUTF8)
	for k, v := range params {
		if !validKeyword(k) || k != strings.ToUpper(k) {
			t.Fatalf("parse(%q): bad keyword %q", arg, k)
		}
		if ok, na := validValue(v); v != "" && (!ok || na && !allow) {
			t.Fatalf("parse(%q): bad value %q", arg, v)
		}
	}
	switch {
	case p.Null:
		if rcpt || p.Postmaster || p.Addr != (Address{}) {
			t.Fatalf("parse(%q) = %+v", arg, p)
		}
	case p.Postmaster:
		if !rcpt || p.Addr != (Address{Local: "postmaster"}) {
			t.Fatalf("parse(%q) = %+v", arg, p)
		}
	default:
		checkAddress(t, p.Addr, allow)
	}
	again := pathArg(keyword, p, params)
	if len(p.Addr.String())+2 > maxPath {
		return // a canonical address literal can be longer than sent
	}
	p2, params2, err := parse(again, utf8ok)
	if err != nil || p2 != p || !maps.Equal(params, params2) {
		t.Fatalf("parse(%q) = %+v %v; parse(%q) = %+v %v %v", arg, p, params, again, p2, params2, err)
	}
}

// pathSeeds returns paths and parameters to seed the path fuzzers.
func pathSeeds() []string {
	return []string{
		"<a@b.c>", " <a@b.c>", "<>", "<a@b.c> SIZE=1 BODY=8BITMIME", "<a@b.c> SIZE=1 SIZE=2",
		`<"a>b"@b.c>`, "<@x,@y:a@b.c>", "<Postmaster>", "<jörg@bücher.de> SMTPUTF8",
		"<a@[IPv6:::1]> X=y", "<a@b.c> X=ü SMTPUTF8", "<a\x00@b.c>", "<a@b.c", "a@b.c",
	}
}

func FuzzParseMailFrom(f *testing.F) {
	for _, s := range pathSeeds() {
		f.Add("FROM:"+s, true)
		f.Add("from:"+s, false)
	}
	f.Fuzz(func(t *testing.T, arg string, utf8ok bool) { fuzzPath(t, false, arg, utf8ok) })
}

func FuzzParseRcptTo(f *testing.F) {
	for _, s := range pathSeeds() {
		f.Add("TO:"+s, true)
		f.Add("to:"+s, false)
	}
	f.Fuzz(func(t *testing.T, arg string, utf8ok bool) { fuzzPath(t, true, arg, utf8ok) })
}

func FuzzHeaderValues(f *testing.F) {
	f.Add([]byte("Subject: a\r\n b\r\n\r\nbody"), "Subject", "hello  world\tagain ")
	f.Add([]byte("A:1\nB : 2\r\n\tx\r\n"), "b", " x")
	f.Add([]byte("X\r\n y\r\nZ: 1\r\n"), "X", "")
	f.Fuzz(func(t *testing.T, hdr []byte, name, value string) {
		vals := HeaderValues(hdr, name)
		if len(vals) > bytes.Count(hdr, []byte("\n"))+1 {
			t.Fatalf("HeaderValues returned %d values", len(vals))
		}
		if n := CountFields(hdr, name); n != len(vals) {
			t.Fatalf("CountFields(%q, %q) = %d, HeaderValues found %d", hdr, name, n, len(vals))
		}
		for _, v := range vals {
			if strings.ContainsRune(v, '\n') || strings.Trim(v, " \t") != v {
				t.Fatalf("HeaderValues(%q, %q) gave %q", hdr, name, v)
			}
		}
		// Fold a field of our own and find it again (RFC 5322 §2.2.3).
		if name == "" || strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r > '~' || r == ':' }) ||
			strings.ContainsAny(value, "\r\n") || asciiEqualFold(name, "X-Other") {
			return
		}
		var b strings.Builder
		b.WriteString("X-Other: 1\r\n" + name + ":")
		for i := 0; i < len(value); i++ {
			if i > 0 && (value[i] == ' ' || value[i] == '\t') {
				b.WriteString("\r\n")
			}
			b.WriteByte(value[i])
		}
		b.WriteString("\r\nX-Other: 2\r\n\r\n" + name + ": body\r\n")
		got := HeaderValues([]byte(b.String()), strings.ToLower(name))
		if want := strings.Trim(value, " \t"); len(got) != 1 || got[0] != want {
			t.Fatalf("HeaderValues(%q) = %q, want [%q]", b.String(), got, want)
		}
	})
}

// FuzzDSNParams checks the parsers of the DSN parameters (RFC 3461 §4)
// on any value: a refusal is a 501 5.5.4 *Error; what they accept holds
// no control character (it goes into DSN header fields), and encoding
// it again gives a value that parses back to the same.
func FuzzDSNParams(f *testing.F) {
	for _, s := range []string{"NEVER", "SUCCESS,FAILURE,DELAY", "FULL", "hdrs", "QQ314159", "a+2Bb",
		"rfc822;bob@example.org", `utf-8;j\x{F6}rg@example.org`, "utf-8;jörg@x", "a+0D", "+", `\x{`, "rfc822;a+2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		refused := func(what string, err error) {
			var e *Error
			if !errors.As(err, &e) || e.Code != 501 || e.Enhanced != "5.5.4" {
				t.Fatalf("%s(%q): err %v, want a 501 5.5.4 *Error", what, v, err)
			}
		}
		if n, err := ParseNotify(v); err != nil {
			refused("ParseNotify", err)
		} else if back, err := ParseNotify(n.String()); err != nil || back != n {
			t.Fatalf("ParseNotify(%q) = %v, its String %q parses to %v, %v", v, n, n.String(), back, err)
		}
		if _, err := ParseRet(v); err != nil {
			refused("ParseRet", err)
		}
		if id, err := ParseEnvID(v); err != nil {
			refused("ParseEnvID", err)
		} else {
			for i := 0; i < len(id); i++ {
				if id[i] < 0x20 || id[i] > 0x7e {
					t.Fatalf("ParseEnvID(%q) = %q: byte %#x", v, id, id[i])
				}
			}
			if back, ok := xtextDecode(XtextEncode(id)); !ok || back != id {
				t.Fatalf("ENVID %q: encoded %q decodes to %q, %v", id, XtextEncode(id), back, ok)
			}
		}
		if o, err := ParseORcpt(v); err != nil {
			refused("ParseORcpt", err)
		} else {
			if !validUTF8Text(o) {
				t.Fatalf("ParseORcpt(%q) = %q: not clean UTF-8 text", v, o)
			}
			enc := EncodeORcpt(o)
			if !IsASCII(enc) || strings.ContainsAny(enc, " =") {
				t.Fatalf("EncodeORcpt(%q) = %q: not an esmtp-value", o, enc)
			}
			if len(enc) <= MaxORcpt {
				if back, err := ParseORcpt(enc); err != nil || back != o {
					t.Fatalf("ORCPT %q: encoded %q parses to %q, %v", o, enc, back, err)
				}
			}
		}
	})
}
