package main

import (
	"context"
	"log/slog"
	"testing"

	"postern/internal/queue"
	"postern/internal/smtp"
	"postern/internal/smtpd"
)

// The spool adapter keeps a send limit's hold: the queue gets the
// message held, with the reason.
func TestSpoolAdapterHold(t *testing.T) {
	s, err := queue.Open(queue.Options{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	env := &smtpd.Envelope{ID: "0000000000000000hold", From: "alice@example.com", Recipients: []string{"bob@example.org"},
		Body: "7BIT", Hold: true, HoldReason: "send limit: messages per hour"}
	if err := (spoolAdapter{s}).Spool(context.Background(), env, &smtp.Message{Header: []byte("Subject: x\r\n\r\n"), Body: smtp.BodyBytes([]byte("x\r\n"))}); err != nil {
		t.Fatal(err)
	}
	got, _, err := s.Get(env.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Hold || got.HoldReason != env.HoldReason {
		t.Errorf("spooled envelope: Hold %v, HoldReason %q", got.Hold, got.HoldReason)
	}
	if it, _ := s.Lookup(env.ID); !it.Held {
		t.Errorf("spooled message not held: %+v", it)
	}
}
