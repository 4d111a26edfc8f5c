package sendmail

import (
	"strings"
	"testing"
)

func TestReadMessage(t *testing.T) {
	for _, tc := range []struct {
		in         string
		ignoreDots bool
		want       string
	}{
		{"Subject: a\nb\n", false, "Subject: a\r\nb\r\n"},
		{"Subject: a\r\n\r\nb", false, "Subject: a\r\n\r\nb\r\n"},
		{"a\rb\r\nc\n", false, "a\r\nb\r\nc\r\n"},
		{"a\n.\nb\n", false, "a\r\n"},
		{"a\n.\nb\n", true, "a\r\n.\r\nb\r\n"},
		{"a\n..\nb\n", false, "a\r\n..\r\nb\r\n"},
		{"", false, ""},
	} {
		got, err := ReadMessage(strings.NewReader(tc.in), tc.ignoreDots, 1000)
		if err != nil || string(got) != tc.want {
			t.Errorf("%q (-i %v): %q, %v; want %q", tc.in, tc.ignoreDots, got, err, tc.want)
		}
	}
	if _, err := ReadMessage(strings.NewReader(strings.Repeat("x", 11)), false, 10); err == nil {
		t.Error("11 bytes with a limit of 10: no error")
	}
}

func TestPrepareMessage(t *testing.T) {
	msg := "To: Bob <b@x.test>, c@x.test\r\nCc: undisclosed-recipients:;\r\nBcc: d@x.test,\r\n e@x.test\r\nSubject: s\r\n\r\nBcc: body stays\r\n"
	out, rcpts, _, err := Prepare([]byte(msg), PrepareOptions{Extract: true, FullName: "Cron Daemon", Recipients: []string{"a@x.test"}, Sender: "root@x.test", Domain: "x.test"})
	if err != nil {
		t.Fatal(err)
	}
	if want := "a@x.test b@x.test c@x.test d@x.test e@x.test"; strings.Join(rcpts, " ") != want {
		t.Errorf("rcpts %q, want %q", rcpts, want)
	}
	want := "From: \"Cron Daemon\" <root@x.test>\r\nTo: Bob <b@x.test>, c@x.test\r\nCc: undisclosed-recipients:;\r\nSubject: s\r\n\r\nBcc: body stays\r\n"
	if string(out) != want {
		t.Errorf("message\n%q\nwant\n%q", out, want)
	}

	// Without -t the header's recipients are not used and Bcc stays; a
	// From field is kept; a non-ASCII name is encoded.
	out, rcpts, _, _ = Prepare([]byte("From: me@x.test\r\nBcc: d@x.test\r\n\r\nb\r\n"), PrepareOptions{Sender: "root@x.test", Domain: "x.test"})
	if len(rcpts) != 0 || string(out) != "From: me@x.test\r\nBcc: d@x.test\r\n\r\nb\r\n" {
		t.Errorf("without -t: %q %q", rcpts, out)
	}
	out, _, _, _ = Prepare([]byte("Subject: s\r\n\r\nb\r\n"), PrepareOptions{FullName: "Zoë", Sender: "z@x.test", Domain: "x.test"})
	if !strings.HasPrefix(string(out), "From: =?utf-8?q?Zo=C3=AB?= <z@x.test>\r\nSubject: s\r\n") {
		t.Errorf("non-ASCII name: %q", out)
	}
	// No header section: the input is the body.
	out, _, _, _ = Prepare([]byte("just text\r\n"), PrepareOptions{Sender: "z@x.test", Domain: "x.test"})
	if string(out) != "From: z@x.test\r\n\r\njust text\r\n" {
		t.Errorf("no header: %q", out)
	}
	// A bad To with -t is a data error.
	if _, _, _, err := Prepare([]byte("To: <<<\r\n\r\n"), PrepareOptions{Extract: true, Domain: "x.test"}); err == nil {
		t.Error("bad To: no error")
	}
	// Bare names: qualified in the address fields and among the
	// recipients, and reported as bare (they go to the postmaster when
	// no user or alias has them).
	out, rcpts, bare, err := Prepare([]byte("From: root (Cron Daemon)\r\nTo: root, alice@x.test\r\nCc: Backup <backup>\r\n\r\nb\r\n"),
		PrepareOptions{Extract: true, Recipients: []string{"www-data", "not an address"}, Sender: "root@x.test", Domain: "x.test"})
	if err != nil {
		t.Fatal(err)
	}
	if want := "From: root@x.test (Cron Daemon)\r\nTo: root@x.test, alice@x.test\r\nCc: Backup <backup@x.test>\r\n\r\nb\r\n"; string(out) != want {
		t.Errorf("bare names in the header: %q, want %q", out, want)
	}
	if got := strings.Join(rcpts, " "); got != "www-data@x.test not an address root@x.test alice@x.test backup@x.test" {
		t.Errorf("rcpts %q", got)
	}
	if got := strings.Join(bare, " "); got != "www-data@x.test root@x.test backup@x.test" {
		t.Errorf("bare %q", got)
	}
}

// FuzzSendmailMessage: whatever the input, the message handed to the
// server has only CRLF line ends (the admin socket refuses any other),
// and -t never panics.
func FuzzSendmailMessage(f *testing.F) {
	f.Add([]byte("To: a@x.test\nBcc: b@x.test,\n c@x.test\n\nbody\n.\n"), false)
	f.Add([]byte("no header\r\rx\r\n"), true)
	f.Add([]byte("Subject: \xff\r\n\r\n"), true)
	f.Fuzz(func(t *testing.T, in []byte, ignoreDots bool) {
		msg, err := ReadMessage(strings.NewReader(string(in)), ignoreDots, 1<<20)
		if err != nil {
			return
		}
		out, _, _, err := Prepare(msg, PrepareOptions{Extract: true, FullName: "N", Sender: "s@x.test", Domain: "x.test"})
		if err != nil {
			return
		}
		for i, c := range out {
			if (c == '\n' && (i == 0 || out[i-1] != '\r')) || (c == '\r' && (i+1 == len(out) || out[i+1] != '\n')) {
				t.Fatalf("bare CR or LF at %d in %q (from %q)", i, out, in)
			}
		}
	})
}
