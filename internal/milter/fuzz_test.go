package milter_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"postern/internal/milter"
)

// scriptConn is a net.Conn whose peer says what a fuzz input says: its
// reads return the input, its writes go nowhere.
type scriptConn struct{ r *bytes.Reader }

func (c *scriptConn) Read(p []byte) (int, error)         { return c.r.Read(p) }
func (c *scriptConn) Write(p []byte) (int, error)        { return len(p), nil }
func (c *scriptConn) Close() error                       { return nil }
func (c *scriptConn) LocalAddr() net.Addr                { return &net.TCPAddr{} }
func (c *scriptConn) RemoteAddr() net.Addr               { return &net.TCPAddr{} }
func (c *scriptConn) SetDeadline(t time.Time) error      { return nil }
func (c *scriptConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *scriptConn) SetWriteDeadline(t time.Time) error { return nil }

func pkt(code byte, data ...[]byte) []byte {
	d := bytes.Join(data, nil)
	b := binary.BigEndian.AppendUint32(nil, uint32(len(d)+1))
	return append(append(b, code), d...)
}

func optnegPacket(actions, proto uint32) []byte {
	d := binary.BigEndian.AppendUint32(nil, 6)
	d = binary.BigEndian.AppendUint32(d, actions)
	d = binary.BigEndian.AppendUint32(d, proto)
	return pkt('O', d)
}

// FuzzConn plays a whole session against a milter that answers with
// the fuzz input: the packet reader, the reply and change parsers and
// the Chain must never panic, and the message must stay a well-formed
// header section and a body with CRLF line ends.
func FuzzConn(f *testing.F) {
	c := pkt('c')
	f.Add(bytes.Join([][]byte{optnegPacket(0x1ff, 0), c, c, c, c, c, c, c, c, c, c}, nil))
	f.Add(bytes.Join([][]byte{optnegPacket(0x1ff, 1<<10), c, c, c, c, c, pkt('s'), c,
		pkt('h', []byte("X-Spam\x00Yes\x00")), pkt('i', []byte{0, 0, 0, 0}, []byte("X-Top\x00a\n\tb\x00")),
		pkt('m', []byte{0, 0, 0, 1}, []byte("Subject\x00\x00")), pkt('e', []byte("<n@example.net>\x00RET=HDRS\x00")),
		pkt('+', []byte("<x@example.org>\x00")), pkt('-', []byte("<bob@example.org>\x00")),
		pkt('q', []byte("spam\x00")), pkt('b', []byte("new\nbody\rx")), pkt('p'), pkt('a')}, nil))
	f.Add(bytes.Join([][]byte{optnegPacket(0x1ff, 0), pkt('y', []byte("550 5.7.1 No %%\x00"))}, nil))
	f.Add(bytes.Join([][]byte{optnegPacket(0x1ff, 0x1fffff), pkt('c')}, nil))
	f.Add(append(optnegPacket(0x1ff, 0), 0, 0, 0, 0))
	f.Add([]byte{0, 0, 0, 13, 'O', 0, 0, 0, 6, 0, 0, 1, 0xff, 0, 0, 0, 0, 0, 0, 0, 1, 'i', 0})
	f.Fuzz(func(t *testing.T, script []byte) {
		m := milter.Milter{Name: "fuzz", Address: "inet:127.0.0.1:1", DefaultAction: milter.DefaultAccept}
		o := milter.ChainOptions{MaxLine: 1000, MaxSize: 1 << 20}
		o.Dial = func(ctx context.Context, network, address string) (net.Conn, error) {
			return &scriptConn{r: bytes.NewReader(script)}, nil
		}
		ch := milter.NewChain(context.Background(), []milter.Milter{m}, o)
		defer ch.Close()
		ch.Connect("[192.0.2.1]", netip.MustParseAddrPort("192.0.2.1:25"), nil)
		ch.Helo("client.example", nil)
		ch.Mail("a@example.net", nil, nil)
		ch.Rcpt("bob@example.org", nil, nil)
		ch.Data(nil)
		h := milter.ParseHeader([]byte(chainHeader))
		tx := &memTx{body: []byte("body\r\n")}
		v, err := ch.Message(h, tx, nil, nil)
		if err != nil {
			t.Fatalf("local error from a memory transaction: %v", err)
		}
		if v.Action == milter.Continue || v.Action == milter.Accept {
			out := h.AppendTo(nil)
			if !bytes.HasSuffix(out, []byte("\r\n\r\n")) || bytes.Contains(out[:len(out)-2], []byte("\r\n\r\n")) {
				t.Fatalf("header section broken: %q", out)
			}
			if bytes.Contains(bytes.ReplaceAll(out, []byte("\r\n"), nil), []byte("\n")) || bytes.Contains(bytes.ReplaceAll(out, []byte("\r\n"), nil), []byte("\r")) {
				t.Fatalf("bare CR or LF in the header: %q", out)
			}
			b := bytes.ReplaceAll(tx.body, []byte("\r\n"), nil)
			if bytes.ContainsAny(b, "\r\n\x00") || len(tx.body) > 0 && !bytes.HasSuffix(tx.body, []byte("\r\n")) {
				t.Fatalf("body broken: %q", tx.body)
			}
		}
		ch.Abort()
	})
}
