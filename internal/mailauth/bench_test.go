package mailauth

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

// benchMessage is a submission-sized message: a few header fields and a
// body of about size bytes in 72-column lines.
func benchMessage(size int) []byte {
	var b bytes.Buffer
	b.WriteString("From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: benchmark\r\n")
	b.WriteString("Date: Fri, 27 Nov 2026 09:00:00 +0000\r\nMessage-ID: <bench@example.org>\r\nMIME-Version: 1.0\r\n")
	b.WriteString("Content-Type: text/plain; charset=utf-8\r\n\r\n")
	for b.Len() < size {
		b.WriteString("The quick brown fox jumps over the lazy dog, again and again and again.\r\n")
	}
	return b.Bytes()
}

// BenchmarkSign signs a message with one key: ed25519 or RSA-2048, for a
// 10 KiB and a 1 MiB message (the body hash dominates the large one, the
// signature the small one).
func BenchmarkSign(b *testing.B) {
	keys := testKeys(b, "example.org")
	for _, k := range keys {
		s, err := NewSigner([]SigningKey{k}, func() time.Time { return time.Unix(1800000000, 0) })
		if err != nil {
			b.Fatal(err)
		}
		for _, size := range []int{10 << 10, 1 << 20} {
			msg := benchMessage(size)
			b.Run(fmt.Sprintf("%s/%dKiB", k.Algorithm(), size>>10), func(b *testing.B) {
				b.SetBytes(int64(len(msg)))
				b.ReportAllocs()
				for b.Loop() {
					h, err := s.Sign(msg)
					if err != nil || len(h) == 0 {
						b.Fatalf("Sign: %q, %v", h, err)
					}
				}
			})
		}
	}
}
