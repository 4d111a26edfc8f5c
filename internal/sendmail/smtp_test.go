package sendmail

import (
	"bufio"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"postern/internal/smtp"
)

// serve runs a dialogue on in and returns the replies and the messages
// submitted; submit, when not nil, answers instead of accepting.
func serve(t *testing.T, in string, submit func(*Message) error) (string, []*Message, error) {
	t.Helper()
	var got []*Message
	s := &Server{Hostname: "mail.d.test", Domain: "d.test", MaxMessageSize: 200, MaxRecipients: 3,
		Submit: func(ctx context.Context, m *Message) (string, error) {
			if submit != nil {
				if err := submit(m); err != nil {
					return "", err
				}
			}
			got = append(got, m)
			return "ID" + string(rune('0'+len(got))), nil
		}}
	var out strings.Builder
	err := s.Serve(context.Background(), strings.NewReader(in), &out)
	return out.String(), got, err
}

func TestServe(t *testing.T) {
	// Pipelined, as a client may: every command at once.
	in := "EHLO client\r\n" +
		"MAIL FROM:<root>\r\n" +
		"RCPT TO:<root>\r\n" +
		"RCPT TO:<Postmaster>\r\n" +
		"RCPT TO:<alice@x.test>\r\n" +
		"RCPT TO:<alice@x.test>\r\n" +
		"DATA\r\n" +
		"Subject: hi\r\n\r\n..dot\r\nbody\r\n.\r\n" +
		"MAIL FROM:<>\r\nRCPT TO:<a@x.test>\r\nRSET\r\nNOOP\r\nVRFY root\r\nQUIT\r\n"
	out, msgs, err := serve(t, in, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := "220 mail.d.test ESMTP Postern (sendmail -bs)\r\n" +
		"250-mail.d.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-ENHANCEDSTATUSCODES\r\n250 SIZE 200\r\n" +
		"250 2.1.0 OK\r\n250 2.1.5 OK\r\n250 2.1.5 OK\r\n250 2.1.5 OK\r\n250 2.1.5 OK\r\n" +
		"354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 OK queued as ID1\r\n" +
		"250 2.1.0 OK\r\n250 2.1.5 OK\r\n250 2.0.0 OK\r\n250 2.0.0 OK\r\n" +
		"252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery\r\n221 2.0.0 Bye\r\n"
	if out != want {
		t.Errorf("replies:\n%s\nwant:\n%s", out, want)
	}
	if len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	m := msgs[0]
	if m.From != "root@d.test" || !slices.Equal(m.Recipients, []string{"root@d.test", "Postmaster@d.test", "alice@x.test"}) ||
		!slices.Equal(m.Bare, []string{"root@d.test", "Postmaster@d.test"}) || string(m.Data) != "Subject: hi\r\n\r\n.dot\r\nbody\r\n" {
		t.Errorf("message %+v %q", m, m.Data)
	}
}

func TestServeErrors(t *testing.T) {
	for _, c := range []struct {
		name, in, want string
	}{
		{"mail before ehlo", "MAIL FROM:<a@x.test>\r\n", "503 5.5.1 Send EHLO or HELO first\r\n"},
		{"rcpt before mail", "HELO c\r\nRCPT TO:<a@x.test>\r\n", "503 5.5.1 Need MAIL before RCPT\r\n"},
		{"data without rcpt", "HELO c\r\nMAIL FROM:<>\r\nDATA\r\n", "554 5.5.1 No valid recipients\r\n"},
		{"bad address", "HELO c\r\nMAIL FROM:<a b@x>\r\n", "501 5.1.7"},
		{"too many rcpts", "HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nRCPT TO:<c@x.test>\r\nRCPT TO:<d@x.test>\r\n", "452 4.5.3 Too many recipients\r\n"},
		{"size", "EHLO c\r\nMAIL FROM:<> SIZE=201\r\n", "552 5.3.4"},
		{"too big", "HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<a@x.test>\r\nDATA\r\n" + strings.Repeat("x", 250) + "\r\n.\r\nQUIT\r\n", "552 5.3.4 Message size exceeds fixed maximum message size\r\n221"},
		{"bare LF in DATA", "HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<a@x.test>\r\nDATA\r\na\nb\r\n.\r\n", "554 5.6.0"},
		{"bare LF in a command", "HELO c\nQUIT\r\n", "500 5.5.2 Bare LF"},
		{"unknown", "STARTTLS\r\n", "502 5.5.1 Command not implemented\r\n"},
		{"refused", "HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<a@x.test>\r\nDATA\r\nx\r\n.\r\n", "550 5.1.1 no such user\r\n"},
		{"temporary", "HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<t@x.test>\r\nDATA\r\nx\r\n.\r\n", "451 4.3.0 Local error: server down\r\n"},
	} {
		out, _, _ := serve(t, c.in, func(m *Message) error {
			if m.Recipients[0] == "t@x.test" {
				return errors.New("server down")
			}
			return smtp.NewError(550, "5.1.1", "no such user")
		})
		if !strings.Contains(out, c.want) {
			t.Errorf("%s: replies\n%s\nlack %q", c.name, out, c.want)
		}
	}
	// Too many errors end the dialogue.
	out, _, err := serve(t, strings.Repeat("BOGUS\r\n", maxErrors+5), nil)
	if err == nil || !strings.HasSuffix(out, "421 4.7.0 Too many errors, closing\r\n") || strings.Count(out, "502 ") != maxErrors {
		t.Errorf("too many errors: %v\n%s", err, out)
	}
}

// FuzzServe: any input ends the dialogue without a panic, and every
// reply line is a well-formed reply.
func FuzzServe(f *testing.F) {
	f.Add("EHLO c\r\nMAIL FROM:<root>\r\nRCPT TO:<root>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n")
	f.Add("HELO c\r\nMAIL FROM:<> SIZE=x\r\nRCPT TO:<Postmaster>\r\nDATA\r\n.\r\n")
	f.Add("MAIL\r\nRCPT\r\nDATA x\r\n\r\n\n\r")
	f.Fuzz(func(t *testing.T, in string) {
		out, msgs, _ := serve(t, in, nil)
		sc := bufio.NewScanner(strings.NewReader(out))
		for sc.Scan() {
			l := strings.TrimSuffix(sc.Text(), "\r")
			if len(l) < 3 || l[0] < '2' || l[0] > '5' || (len(l) > 3 && l[3] != ' ' && l[3] != '-') {
				t.Fatalf("bad reply line %q in\n%s", l, out)
			}
		}
		for _, m := range msgs {
			if len(m.Recipients) == 0 || len(m.Data) > 200 {
				t.Fatalf("message %+v", m)
			}
		}
	})
}
