// Package spooltest holds what the tests of the spool and of the queue
// runner both need to put messages in a spool: fresh ids, envelopes and
// deterministic message data. It does not import the spool, so that the
// spool's own tests can use it.
package spooltest

import (
	"fmt"
	"hash/crc32"
	"io"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"postern/internal/smtp"
)

// seq numbers the ids ID makes in this process.
var seq atomic.Uint64

// ID returns a fresh 20-character lower-case queue id, ordered by
// creation (not smtp.NewID: the order is the order of the calls).
func ID() string {
	return fmt.Sprintf("t%019d", seq.Add(1))
}

// Env returns an envelope for message id, with every field set, to
// rcpts (bob@example.org when none).
func Env(id string, rcpts ...string) *smtp.Envelope {
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

// Data returns deterministic message bytes for id, of about size bytes:
// a Subject naming id, then lines that name it too.
func Data(id string, size int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "Subject: %s\r\n\r\n", id)
	line := fmt.Sprintf("%08x line of %s\r\n", crc32.ChecksumIEEE([]byte(id)), id)
	for b.Len() < size {
		b.WriteString(line)
	}
	return []byte(b.String())
}

// Bytes returns the whole of msg in memory; it panics when its body
// cannot be read.
func Bytes(msg *smtp.Message) []byte {
	b, err := io.ReadAll(msg.Reader())
	if err != nil {
		panic(err)
	}
	return b
}
