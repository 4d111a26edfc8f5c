package mailauth

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"

	"postern/internal/smtp"
)

// fileMessage writes msg to a file after some junk and returns its header
// section and its body as a section of that file, as a server holds a
// large message.
func fileMessage(t *testing.T, msg []byte) ([]byte, smtp.Body) {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "msg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	f.WriteString("junk")
	f.Write(msg)
	_, end := splitHeader(msg)
	return bytes.Clone(msg[:end]), smtp.BodyFile(f, int64(4+end), int64(len(msg)-end))
}

// A message whose body is in a file is signed, verified and checked as
// the same message in memory: same signatures, same results, same
// verdict; the body is read as a stream.
func TestStreamedBody(t *testing.T) {
	t.Parallel()
	f := newCheckFixture(t)
	big := msg("From: Alice <alice@example.com>", "Subject: big", "Authentication-Results: "+ourHost+"; forged", "",
		strings.Repeat("A line  with\ttabs and trailing space \r\n", 30000)+"\r\n\r\n")
	h1, err := f.signer.Sign(big)
	if err != nil || h1 == nil {
		t.Fatal(h1, err)
	}
	hdr, body := fileMessage(t, big)
	h2, err := f.signer.SignMessage(hdr, body)
	if err != nil || !bytes.Equal(h1, h2) {
		t.Fatalf("signatures differ (%v):\n%s\n%s", err, h1, h2)
	}
	signed := append(h1, big...)
	shdr, sbody := fileMessage(t, signed)
	ctx := context.Background()
	r1 := VerifyDKIM(ctx, f.dns.Resolver(), signed, VerifyOptions{MaxSignatures: 5, Now: clock})
	r2 := VerifyDKIMMessage(ctx, f.dns.Resolver(), shdr, sbody, VerifyOptions{MaxSignatures: 5, Now: clock})
	if len(r1) != 2 || r1[0].Result != "pass" || !reflect.DeepEqual(r1, r2) {
		t.Fatalf("results differ: %+v / %+v", r1, r2)
	}
	c := f.checker(t, false)
	base := Message{Remote: netip.MustParseAddr("192.0.2.1"), Helo: "client.example.net", MailFrom: "bounce@example.com"}
	m1, m2 := base, base
	m1.Data = signed
	m2.Header, m2.Body = shdr, sbody
	v1, err1 := c.Check(ctx, m1)
	v2, err2 := c.Check(ctx, m2)
	if err1 != nil || err2 != nil || !reflect.DeepEqual(v1, v2) {
		t.Fatalf("verdicts differ: %+v, %v / %+v, %v", v1, err1, v2, err2)
	}
	if v2.Results.DMARC.Result != "pass" || v2.Header == nil || bytes.Contains(v2.Header, []byte("forged")) {
		t.Errorf("verdict %+v, header %q", v2.Results, v2.Header)
	}
}
