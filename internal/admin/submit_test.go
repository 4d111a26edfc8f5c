package admin

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"postern/internal/queue"
)

// spoolSubmitter puts straight into the spool.
type spoolSubmitter struct{ s *queue.Spool }

func (p spoolSubmitter) Submit(ctx context.Context, env *queue.Envelope, data []byte) error {
	return p.s.Put(ctx, env, data)
}

func TestSubmit(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

	// Off until configured.
	if _, err := f.client.Submit(ctx, SubmitRequest{From: "a@x.test", Recipients: []string{"b@x.test"}, Data: []byte("\r\n")}); !errors.Is(err, ErrLocalOff) {
		t.Fatalf("submit without Local: %v, want ErrLocalOff", err)
	}
	l, err := Listen(f.dir + "/local.sock")
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{Spool: f.spool, Runner: f.runner, Logger: quiet(),
		Local: &LocalSubmit{Submitter: spoolSubmitter{f.spool}, Hostname: "mx.x.test", MaxMessageSize: 1000, Now: func() time.Time { return now }}}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	client := &Client{SocketPath: f.dir + "/local.sock"}

	msg := "From: a@x.test\r\nSubject: hi\r\n\r\nbody\r\n"
	id, err := client.Submit(ctx, SubmitRequest{From: "a@x.test", Recipients: []string{"b@X.TEST", "b@x.test", "c@x.test"}, Data: []byte(msg)})
	if err != nil {
		t.Fatal(err)
	}
	env, data, err := f.spool.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if env.From != "a@x.test" || strings.Join(env.Recipients, ",") != "b@x.test,c@x.test" || env.Listener != "local" || env.Body != "7BIT" {
		t.Errorf("envelope %+v", env)
	}
	want := "Received: by mx.x.test (Postern, from userid " + strconv.Itoa(os.Getuid()) + ")\r\n\tid " + id +
		"; Fri, 27 Nov 2026 10:00:00 +0000\r\nMessage-ID: <" + id + "@mx.x.test>\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\n" + msg
	if string(data) != want {
		t.Errorf("data\n%q\nwant\n%q", data, want)
	}

	// Message-ID and Date kept; a missing final CRLF added; 8-bit body; null sender.
	msg = "Message-ID: <x@y>\r\nDate: Thu, 26 Nov 2026 10:00:00 +0000\r\n\r\nd\xc3\xa9j\xc3\xa0"
	id, err = client.Submit(ctx, SubmitRequest{Recipients: []string{"b@x.test"}, Data: []byte(msg)})
	if err != nil {
		t.Fatal(err)
	}
	env, data, _ = f.spool.Get(id)
	if env.From != "" || env.Body != "8BITMIME" || strings.Count(string(data), "Message-ID") != 1 || strings.Count(string(data), "Date:") != 1 || !strings.HasSuffix(string(data), msg+"\r\n") {
		t.Errorf("envelope %+v data %q", env, data)
	}

	for _, tc := range []struct {
		name string
		req  SubmitRequest
		want error
	}{
		{"no rcpt", SubmitRequest{From: "a@x.test", Data: []byte("\r\n")}, ErrRefused},
		{"bad rcpt", SubmitRequest{Recipients: []string{"b@@x"}, Data: []byte("\r\n")}, ErrRefused},
		{"bad from", SubmitRequest{From: "a b", Recipients: []string{"b@x.test"}, Data: []byte("\r\n")}, ErrRefused},
		{"bare LF", SubmitRequest{Recipients: []string{"b@x.test"}, Data: []byte("a: b\n\nc\r\n")}, ErrRefused},
		{"bare CR", SubmitRequest{Recipients: []string{"b@x.test"}, Data: []byte("a: b\r\n\r\nc\rd\r\n")}, ErrRefused},
		{"too big", SubmitRequest{Recipients: []string{"b@x.test"}, Data: []byte(strings.Repeat("x", 998) + "\r\n\r\n")}, ErrRefused},
	} {
		if _, err := client.Submit(ctx, tc.req); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}

	// No server.
	c := &Client{SocketPath: f.dir + "/none.sock"}
	if _, err := c.Submit(ctx, SubmitRequest{Recipients: []string{"b@x.test"}}); !errors.Is(err, ErrNotRunning) {
		t.Errorf("no server: %v", err)
	}
}
