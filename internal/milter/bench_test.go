package milter_test

import (
	"bytes"
	"context"
	"net/netip"
	"testing"

	"postern/internal/milter"
	"postern/internal/milter/miltertest"
)

// BenchmarkChainMessage is one SMTP session's worth of milter work
// against the test milter over loopback: connect (dial and
// negotiation), HELO, MAIL, RCPT, DATA, a 10 KB message with six header
// fields, a header added at its end, and the close. One op is one
// session.
func BenchmarkChainMessage(b *testing.B) {
	srv := &miltertest.Server{DiscardBody: true, Handler: miltertest.At('E', miltertest.AddHeader("X-Spam", "No"), miltertest.Continue)}
	srv.Start(b)
	m := testMilter("bench", srv)
	hdr := []byte("Received: from client.example by mx.example.org\r\nFrom: a@example.net\r\nTo: bob@example.org\r\n" +
		"Subject: bench\r\nDate: Mon, 6 Jul 2026 10:00:00 +0000\r\nMessage-ID: <1@example.net>\r\nMIME-Version: 1.0\r\n\r\n")
	body := bytes.Repeat([]byte(string(bytes.Repeat([]byte("x"), 76))+"\r\n"), 10240/78)
	o := milter.ChainOptions{MaxLine: 1000, MaxSize: 1 << 20}
	b.ReportAllocs()
	b.SetBytes(int64(len(hdr) + len(body)))
	for b.Loop() {
		c := milter.NewChain(context.Background(), []milter.Milter{m}, o)
		c.Connect("[192.0.2.1]", netip.MustParseAddrPort("192.0.2.1:1234"), nil)
		c.Helo("client.example", nil)
		c.Mail("a@example.net", nil, nil)
		c.Rcpt("bob@example.org", nil, nil)
		c.Data(nil)
		h := milter.ParseHeader(hdr)
		v, err := c.Message(h, &memTx{body: body}, nil, nil)
		if err != nil || v.Action != milter.Continue || !h.Changed() {
			b.Fatal(v, err)
		}
		c.Abort()
		c.Close()
	}
}
