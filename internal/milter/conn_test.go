package milter_test

import (
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"postern/internal/milter"
	"postern/internal/milter/miltertest"
	"postern/internal/testkit"
)

// testMilter returns the Milter for srv, with timeouts no test waits for
// on the real clock.
func testMilter(name string, srv *miltertest.Server) milter.Milter {
	return milter.Milter{Name: name, Address: srv.Address(), ConnectTimeout: time.Minute,
		CommandTimeout: time.Minute, ContentTimeout: time.Minute, DefaultAction: milter.DefaultTempfail}
}

func dial(t *testing.T, srv *miltertest.Server) *milter.Conn {
	t.Helper()
	m := testMilter("test", srv)
	c, err := milter.Dial(context.Background(), &m, milter.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestConnEvents(t *testing.T) {
	srv := &miltertest.Server{}
	srv.Start(t)
	c := dial(t, srv)
	steps := []func() (milter.Response, error){
		func() (milter.Response, error) {
			return c.Connect("[192.0.2.7]", netip.MustParseAddrPort("192.0.2.7:4321"), []milter.Macro{{"j", "mx.example.org"}, {"{daemon_name}", "mx"}, {"{empty}", ""}})
		},
		func() (milter.Response, error) { return c.Helo("client.example", nil) },
		func() (milter.Response, error) {
			return c.Mail("a@example.net", []string{"BODY=8BITMIME"}, []milter.Macro{{"{mail_addr}", "a@example.net"}})
		},
		func() (milter.Response, error) { return c.Rcpt("bob@example.org", nil, nil) },
		func() (milter.Response, error) { return c.Data([]milter.Macro{{"i", "QUEUEID"}}) },
		func() (milter.Response, error) { return c.Header("Subject", "Hi\n there") },
		func() (milter.Response, error) { return c.EndOfHeader(nil) },
		func() (milter.Response, error) { return c.Body([]byte("body\r\n")) },
	}
	for i, step := range steps {
		r, err := step()
		if err != nil || r.Action != milter.Continue {
			t.Fatalf("step %d: %+v, %v", i, r, err)
		}
	}
	if err := c.Abort(); err != nil {
		t.Fatal(err)
	}
	c.Close()
	srv.WaitCodes(t, "Q")
	if got := srv.Codes(); got != "CHMRTLNBAQ" {
		t.Fatalf("events %q", got)
	}
	ev := srv.Events()
	conn := ev[0].Data
	// hostname NUL, family '4', port, address NUL
	if want := append(append([]byte("[192.0.2.7]\x004"), 0x10, 0xe1), "192.0.2.7\x00"...); string(conn) != string(want) {
		t.Errorf("connect data %q, want %q", conn, want)
	}
	if ev[0].Macros["j"] != "mx.example.org" || ev[0].Macros["{daemon_name}"] != "mx" {
		t.Errorf("connect macros %v", ev[0].Macros)
	}
	if _, sent := ev[0].Macros["{empty}"]; sent {
		t.Errorf("an empty macro was sent")
	}
	if !slices.Equal(ev[2].Args, []string{"<a@example.net>", "BODY=8BITMIME"}) || ev[2].Macros["{mail_addr}"] != "a@example.net" {
		t.Errorf("mail %q %v", ev[2].Args, ev[2].Macros)
	}
	if !slices.Equal(ev[3].Args, []string{"<bob@example.org>"}) || ev[4].Macros["i"] != "QUEUEID" {
		t.Errorf("rcpt %q, data macros %v", ev[3].Args, ev[4].Macros)
	}
	if !slices.Equal(ev[5].Args, []string{"Subject", "Hi\n there"}) || string(ev[7].Data) != "body\r\n" {
		t.Errorf("header %q, body %q", ev[5].Args, ev[7].Data)
	}
}

// A milter that does not want an event does not get it; one that will not
// answer one is not waited for.
func TestConnNegotiatedOptions(t *testing.T) {
	const noHelo, nrRcpt, noBody = 1 << 1, 1 << 15, 1 << 4
	srv := &miltertest.Server{Protocol: noHelo | nrRcpt | noBody}
	srv.Start(t)
	c := dial(t, srv)
	c.Connect("[192.0.2.7]", netip.AddrPort{}, nil)
	for _, step := range []func() (milter.Response, error){
		func() (milter.Response, error) { return c.Helo("x", nil) },
		func() (milter.Response, error) { return c.Mail("", nil, nil) },
		func() (milter.Response, error) { return c.Rcpt("a@example.org", nil, nil) },
		func() (milter.Response, error) { return c.Rcpt("b@example.org", nil, nil) },
		func() (milter.Response, error) { return c.Data(nil) },
		func() (milter.Response, error) { return c.Body([]byte("x")) },
	} {
		if r, err := step(); err != nil || r.Action != milter.Continue {
			t.Fatalf("%+v %v", r, err)
		}
	}
	testkit.WaitFor(t, "5 events", func() bool { return len(srv.Events()) == 5 })
	if got := srv.Codes(); got != "CMRRT" {
		t.Errorf("events %q, want no HELO and no body", got)
	}
	if ev := srv.Events(); string(ev[1].Args[0]) != "<>" || ev[0].Data[len("[192.0.2.7]\x00")] != 'U' {
		t.Errorf("null sender %q, connect %q", ev[1].Args, ev[0].Data)
	}
}

// SMFIR_SKIP: the rest of the header fields are not sent; the end of the
// header is.
func TestConnSkip(t *testing.T) {
	srv := &miltertest.Server{Protocol: 1 << 10, Handler: func(ev *miltertest.Event) []miltertest.Packet {
		if ev.Code == 'L' {
			return []miltertest.Packet{miltertest.Skip}
		}
		return nil
	}}
	srv.Start(t)
	c := dial(t, srv)
	c.Connect("h", netip.AddrPort{}, nil)
	c.Mail("a@b.example", nil, nil)
	c.Rcpt("c@d.example", nil, nil)
	c.Data(nil)
	for _, name := range []string{"A", "B", "C"} {
		if r, err := c.Header(name, "v"); err != nil || r.Action != milter.Continue {
			t.Fatal(r, err)
		}
	}
	c.EndOfHeader(nil)
	if got := srv.Codes(); got != "CMRTLN" {
		t.Errorf("events %q", got)
	}
}

func TestConnReplies(t *testing.T) {
	for _, tc := range []struct {
		name   string
		p      miltertest.Packet
		action milter.Action
		reply  string // "" for none
	}{
		{"accept", miltertest.Accept, milter.Accept, ""},
		{"reject", miltertest.Reject, milter.Reject, ""},
		{"tempfail", miltertest.Tempfail, milter.Tempfail, ""},
		{"discard", miltertest.Discard, milter.Discard, ""},
		{"replycode", miltertest.ReplyCode("550 5.7.1 Spam message rejected"), milter.Reject, "550 5.7.1 Spam message rejected"},
		{"replycode 4xx", miltertest.ReplyCode("451 4.7.1 Try later"), milter.Tempfail, "451 4.7.1 Try later"},
		{"percent", miltertest.ReplyCode("550 5.7.1 100%% spam %s"), milter.Reject, "550 5.7.1 100% spam s"},
		{"multi-line", miltertest.ReplyCode("550-5.7.1 first\r\n550 5.7.1 second"), milter.Reject, "550 5.7.1 first second"},
		{"shutdown", miltertest.Packet{Code: '4'}, milter.Tempfail, "421 4.7.0 Server closing connection"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := &miltertest.Server{Handler: func(ev *miltertest.Event) []miltertest.Packet {
				return []miltertest.Packet{miltertest.Progress, tc.p}
			}}
			srv.Start(t)
			c := dial(t, srv)
			r, err := c.Helo("x", nil)
			if err != nil || r.Action != tc.action {
				t.Fatalf("%+v %v", r, err)
			}
			if got := ""; r.Reply != nil {
				got = r.Reply.String()
				if got != tc.reply {
					t.Errorf("reply %q, want %q", got, tc.reply)
				}
			} else if tc.reply != "" {
				t.Errorf("no reply, want %q", tc.reply)
			}
		})
	}
}

// Broken milters: each is a protocol error, never a panic, and the
// Conn is broken after it.
func TestConnProtocolErrors(t *testing.T) {
	optneg := func(v, a, p uint32) *miltertest.Packet {
		d := binary.BigEndian.AppendUint32(nil, v)
		d = binary.BigEndian.AppendUint32(d, a)
		d = binary.BigEndian.AppendUint32(d, p)
		return &miltertest.Packet{Code: 'O', Data: d}
	}
	for _, tc := range []struct {
		name   string
		optneg *miltertest.Packet
		reply  miltertest.Packet
		kind   milter.ErrorKind
	}{
		// The packet that panics d--j/go-milter and emersion/go-milter.
		{"empty packet at negotiation", &miltertest.Packet{Raw: []byte{0, 0, 0, 0}}, miltertest.Continue, milter.KindProtocol},
		{"huge packet", &miltertest.Packet{Raw: []byte{0x1f, 0xff, 0xff, 0xff, 'O'}}, miltertest.Continue, milter.KindProtocol},
		{"version 7", optneg(7, 0, 0), miltertest.Continue, milter.KindProtocol},
		{"version 1", optneg(1, 0, 0), miltertest.Continue, milter.KindProtocol},
		{"unknown action", optneg(6, 1<<9, 0), miltertest.Continue, milter.KindProtocol},
		{"short negotiation", &miltertest.Packet{Code: 'O', Data: []byte{0, 0, 0, 6}}, miltertest.Continue, milter.KindProtocol},
		{"truncated packet", nil, miltertest.Packet{Raw: []byte{0, 0, 0, 9, 'y', '5'}, Close: true}, milter.KindIO},
		{"empty reply", nil, miltertest.Packet{Raw: []byte{0, 0, 0, 0}}, milter.KindProtocol},
		{"unknown reply", nil, miltertest.Packet{Code: 'Z'}, milter.KindProtocol},
		{"continue with data", nil, miltertest.Packet{Code: 'c', Data: []byte("x")}, milter.KindProtocol},
		{"change outside end of message", nil, miltertest.AddHeader("X", "y"), milter.KindProtocol},
		{"reply 2xx", nil, miltertest.ReplyCode("250 ok"), milter.KindProtocol},
		{"reply without code", nil, miltertest.ReplyCode("rejected"), milter.KindProtocol},
		{"reply with control characters", nil, miltertest.ReplyCode("550 5.7.1 a\x07b"), milter.KindProtocol},
		{"reply with bare LF", nil, miltertest.ReplyCode("550 a\n550 b"), milter.KindProtocol},
		{"reply without NUL", nil, miltertest.Packet{Code: 'y', Data: []byte("550 no")}, milter.KindProtocol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := &miltertest.Server{OptNeg: tc.optneg, Handler: func(*miltertest.Event) []miltertest.Packet {
				return []miltertest.Packet{tc.reply}
			}}
			srv.Start(t)
			m := testMilter("broken", srv)
			c, err := milter.Dial(context.Background(), &m, milter.Options{})
			if err == nil {
				_, err = c.Helo("x", nil)
			}
			var me *milter.Error
			if !errors.As(err, &me) || me.Kind != tc.kind || me.Milter != "broken" {
				t.Fatalf("error %v (%#v), want kind %s", err, me, tc.kind)
			}
			if c != nil {
				if _, err2 := c.Mail("a@b.example", nil, nil); err2 == nil {
					t.Error("a broken Conn answered")
				}
			}
		})
	}
}

func TestParseAddress(t *testing.T) {
	for in, want := range map[string]string{
		"inet:127.0.0.1:11332":  "tcp 127.0.0.1:11332",
		"inet:localhost:8891":   "tcp localhost:8891",
		"inet:[::1]:11332":      "tcp [::1]:11332",
		"unix:/run/rspamd.sock": "unix /run/rspamd.sock",
		"local:/run/x.sock":     "unix /run/x.sock",
		"inet:11332@localhost":  "error write inet:localhost:11332",
		"inet:localhost":        "error",
		"tcp:localhost:1":       "error",
		"":                      "error",
		"unix:":                 "error",
	} {
		n, a, err := milter.ParseAddress(in)
		got := n + " " + a
		if err != nil {
			got = "error"
			if strings.Contains(want, "write") && strings.Contains(err.Error(), "write inet:localhost:11332") {
				got = want
			}
		}
		if got != want {
			t.Errorf("ParseAddress(%q) = %q (%v), want %q", in, got, err, want)
		}
	}
}
