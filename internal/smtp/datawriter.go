package smtp

import (
	"bufio"
	"io"
)

// DataWriter writes message content after a 354 reply (RFC 5321 §4.5.2)
// as it comes, in pieces of any size: a line that starts with "." gets
// another "." in front, and every line ends with CRLF (a bare LF or bare
// CR becomes CRLF, so the next hop never sees a bare line ending,
// RFC 5321 §2.3.8). Close adds a final CRLF when the content did not end
// with one and flushes; it does not write the terminating ".CRLF".
type DataWriter struct {
	w     *bufio.Writer
	bol   bool // at the beginning of a line
	cr    bool // the last piece ended with a CR not yet written
	plain bool // no dot-stuffing (BDAT)
}

// NewDataWriter returns a DataWriter on w.
func NewDataWriter(w *bufio.Writer) *DataWriter { return &DataWriter{w: w, bol: true} }

// NewChunkWriter returns a DataWriter on w for the content of a BDAT
// chunk (RFC 3030 §2): line endings made CRLF as for DATA, and no
// dot-stuffing, which BDAT does not use. ChunkSize counts what it
// writes.
func NewChunkWriter(w *bufio.Writer) *DataWriter { return &DataWriter{w: w, bol: true, plain: true} }

// Write writes p, dot-stuffed and with its line endings made CRLF. Its
// error is w's.
func (d *DataWriter) Write(p []byte) (int, error) {
	w := d.w
	i, start := 0, 0
	if d.cr && len(p) > 0 {
		d.cr = false
		w.WriteString("\r\n")
		d.bol = true
		if p[0] == '\n' {
			i, start = 1, 1
		}
	}
	for ; i < len(p); i++ {
		c := p[i]
		if d.bol && c == '.' && !d.plain {
			w.Write(p[start:i])
			w.WriteByte('.')
			start = i
		}
		d.bol = false
		switch c {
		case '\r':
			if i+1 == len(p) {
				// Whether it is a bare CR depends on the next piece.
				w.Write(p[start:i])
				start = i + 1
				d.cr = true
				continue
			}
			if p[i+1] == '\n' {
				i++
			} else {
				w.Write(p[start:i])
				w.WriteString("\r\n")
				start = i + 1
			}
			d.bol = true
		case '\n':
			w.Write(p[start:i])
			w.WriteString("\r\n")
			start = i + 1
			d.bol = true
		}
	}
	if _, err := w.Write(p[start:]); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close ends the content with CRLF when it did not end with a line
// ending and flushes w.
func (d *DataWriter) Close() error {
	if d.cr {
		d.w.WriteString("\r\n")
		d.cr, d.bol = false, true
	}
	if !d.bol {
		d.w.WriteString("\r\n")
		d.bol = true
	}
	return d.w.Flush()
}

// WriteMessage writes m as DATA content to w through a DataWriter: its
// header, then its body as a stream. It does not write the terminating
// ".CRLF".
func WriteMessage(w *bufio.Writer, m *Message) error {
	d := NewDataWriter(w)
	if _, err := d.Write(m.Header); err != nil {
		return err
	}
	if _, err := m.Body.WriteTo(d); err != nil {
		return err
	}
	return d.Close()
}

var _ io.WriteCloser = (*DataWriter)(nil)
