package queue

import (
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"postern/internal/smtp"
	"postern/internal/spool"
)

var testSeq atomic.Uint64

// testID returns a fresh 20-character lower-case id, ordered by creation.
func testID() string {
	return fmt.Sprintf("t%019d", testSeq.Add(1))
}

func testEnv(id string, rcpts ...string) *smtp.Envelope {
	if len(rcpts) == 0 {
		rcpts = []string{"bob@example.org"}
	}
	return &smtp.Envelope{
		ID: id, From: "alice@example.com", Recipients: rcpts,
		SMTPUTF8: true, Body: "8BITMIME", AuthUser: "alice", Listener: "submission",
		Remote: netip.MustParseAddrPort("[2001:db8::1]:4567"), Helo: "client.example.com",
		ReceivedAt: time.Unix(1_800_000_000, 123456789),
	}
}

// testData returns deterministic message bytes for id, of about size bytes.
func testData(id string, size int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "Subject: %s\r\n\r\n", id)
	line := fmt.Sprintf("%08x line of %s\r\n", crc32.ChecksumIEEE([]byte(id)), id)
	for b.Len() < size {
		b.WriteString(line)
	}
	return []byte(b.String())
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openTest(t testing.TB, dir string, segSize int64) *spool.Spool {
	t.Helper()
	s, err := spool.Open(spool.Options{Dir: dir, SegmentSize: segSize, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustPut(t testing.TB, s *spool.Spool, env *smtp.Envelope, data []byte) {
	t.Helper()
	if err := s.Put(context.Background(), env, data); err != nil {
		t.Fatal(err)
	}
}

// messageBytes returns the whole of msg in memory.
func messageBytes(msg *smtp.Message) []byte {
	b, err := io.ReadAll(msg.Reader())
	if err != nil {
		panic(err)
	}
	return b
}
