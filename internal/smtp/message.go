package smtp

import (
	"bytes"
	"errors"
	"io"
)

// Message is a message as a server holds it between the end of DATA and
// the spool, and as the spool gives it back for delivery: the header
// section in memory, the body in memory or in a file. Header followed by
// the body is the whole message, with CRLF line endings, dot-unstuffed.
// A server bounds the header section; the body may be as large as the
// message size limit, so code that handles a Message reads the body as
// a stream (Body.Reader, Body.WriteTo) rather than holding it.
type Message struct {
	// Header is the header section (RFC 5322 §2.1) with the empty line
	// that ends it, and the fields the server put on top (Received,
	// Authentication-Results...). A message without an empty line is all
	// header and has an empty Body.
	Header []byte
	// Body is the rest of the message.
	Body Body
}

// Size returns the size of the whole message in bytes.
func (m *Message) Size() int64 { return int64(len(m.Header)) + m.Body.Size() }

// Reader returns a reader of the whole message, from its first byte.
func (m *Message) Reader() io.Reader {
	if m.Body.Size() == 0 {
		return bytes.NewReader(m.Header)
	}
	return io.MultiReader(bytes.NewReader(m.Header), m.Body.Reader())
}

// WriteTo writes the whole message to w.
func (m *Message) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(m.Header)
	if err != nil {
		return int64(n), err
	}
	nb, err := m.Body.WriteTo(w)
	return int64(n) + nb, err
}

// Body is the body of a Message: bytes in memory, or a section of a file
// (any io.ReaderAt). The zero Body is empty. A Body is a value: copies
// share the bytes or the file, which its owner closes.
type Body struct {
	mem  []byte
	file io.ReaderAt
	off  int64
	n    int64
}

// BodyBytes returns a Body holding b (not copied).
func BodyBytes(b []byte) Body { return Body{mem: b, n: int64(len(b))} }

// BodyFile returns the Body made of the n bytes of f from offset off.
func BodyFile(f io.ReaderAt, off, n int64) Body { return Body{file: f, off: off, n: n} }

// Size returns the size of the body in bytes.
func (b Body) Size() int64 { return b.n }

// Bytes returns the body when it is in memory; ok is false when it is in
// a file.
func (b Body) Bytes() (p []byte, ok bool) { return b.mem, b.file == nil }

// File returns the file and the offset of a body in a file; ok is false
// when it is in memory.
func (b Body) File() (f io.ReaderAt, off int64, ok bool) { return b.file, b.off, b.file != nil }

// Reader returns a reader of the body from its first byte. Each call
// returns a new, independent reader.
func (b Body) Reader() io.Reader {
	if b.file == nil {
		return bytes.NewReader(b.mem)
	}
	return io.NewSectionReader(b.file, b.off, b.n)
}

// ReadAt reads the body at offset off, as io.ReaderAt does.
func (b Body) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("smtp: body: negative offset")
	}
	if b.file == nil {
		if off >= int64(len(b.mem)) {
			return 0, io.EOF
		}
		n := copy(p, b.mem[off:])
		if n < len(p) {
			return n, io.EOF
		}
		return n, nil
	}
	return io.NewSectionReader(b.file, b.off, b.n).ReadAt(p, off)
}

// WriteTo writes the body to w. A body in a file is read with ReadAt in
// pieces of at most 32 KiB (into w's own buffer when w is an
// io.ReaderFrom such as a bufio.Writer), so that concurrent readers of
// one file do not disturb each other.
func (b Body) WriteTo(w io.Writer) (int64, error) {
	if b.file == nil {
		n, err := w.Write(b.mem)
		return int64(n), err
	}
	return io.Copy(w, io.NewSectionReader(b.file, b.off, b.n))
}
