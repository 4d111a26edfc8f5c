package delivery

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"postern/internal/testkit"
)

// fakeLMTP is a scriptable LMTP server. reply maps a command (or
// "DOT rcpt" for the per-recipient reply after the final dot) to a reply;
// "" means 250, "DROP" closes the connection.
type fakeLMTP struct {
	ln    net.Listener
	reply func(cmd string) string
	mu    sync.Mutex
	data  [][]byte // messages received, un-stuffed
	raw   [][]byte
	lhlo  []string
	wg    sync.WaitGroup
}

func newFakeLMTP(t *testing.T, network, addr string, reply func(string) string) *fakeLMTP {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeLMTP{ln: ln, reply: reply}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				s.session(c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

func (s *fakeLMTP) answer(c net.Conn, cmd, def string) bool {
	r := ""
	if s.reply != nil {
		r = s.reply(cmd)
	}
	if r == "DROP" {
		return false
	}
	if r == "" {
		r = def
	}
	io.WriteString(c, r+"\r\n")
	return true
}

func (s *fakeLMTP) session(c net.Conn) {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if !s.answer(c, "GREETING", "220 lmtp ready") {
		return
	}
	br := bufio.NewReader(c)
	var rcpts []string
	for {
		line, verb, arg, err := testkit.ReadCommand(br)
		if err != nil {
			return
		}
		switch verb {
		case "LHLO":
			s.mu.Lock()
			s.lhlo = append(s.lhlo, arg)
			s.mu.Unlock()
			if !s.answer(c, line, "250-lmtp\r\n250-8BITMIME\r\n250 PIPELINING") {
				return
			}
		case "MAIL":
			rcpts = nil
			if !s.answer(c, line, "250 2.1.0 ok") {
				return
			}
		case "RCPT":
			r := ""
			if s.reply != nil {
				r = s.reply(line)
			}
			if r == "" || r[0] == '2' {
				rcpts = append(rcpts, strings.TrimPrefix(arg, "TO:"))
			}
			if !s.answer(c, line, "250 2.1.5 ok") {
				return
			}
		case "DATA":
			if !s.answer(c, line, "354 go") {
				return
			}
			raw, data, ok := testkit.ReadDotData(br)
			if !ok {
				return
			}
			s.mu.Lock()
			s.data, s.raw = append(s.data, data), append(s.raw, raw)
			s.mu.Unlock()
			for _, r := range rcpts {
				if !s.answer(c, "DOT "+r, "250 2.0.0 "+r+" saved") {
					return
				}
			}
		case "QUIT":
			s.answer(c, line, "221 bye")
			return
		default:
			io.WriteString(c, "500 5.5.1 what\r\n")
		}
	}
}

// check compares errs with want: "" for nil, "temp" or "perm" plus a
// substring of the error.
func check(t *testing.T, errs []error, want ...string) {
	t.Helper()
	if len(errs) != len(want) {
		t.Fatalf("%d errors for %d recipients", len(errs), len(want))
	}
	for i, w := range want {
		err := errs[i]
		if w == "" {
			if err != nil {
				t.Errorf("rcpt %d: %v", i, err)
			}
			continue
		}
		kind, text, _ := strings.Cut(w, " ")
		var le *LMTPError
		if !errors.As(err, &le) {
			t.Errorf("rcpt %d: %v is not an *LMTPError", i, err)
			continue
		}
		if (kind == "perm") != errors.Is(err, ErrPermanent) || (kind == "perm") == le.Temporary() {
			t.Errorf("rcpt %d: %v: want %s", i, err, kind)
		}
		if !strings.Contains(err.Error(), text) {
			t.Errorf("rcpt %d: %v: want %q", i, err, text)
		}
	}
}

var lmtpMsg = []byte("Subject: x\r\n\r\n.leading dot\r\nbody\r\n")

func TestLMTPPerRecipient(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			addr := "127.0.0.5:0"
			if network == "unix" {
				addr = filepath.Join(t.TempDir(), "lmtp.sock")
			}
			s := newFakeLMTP(t, network, addr, func(cmd string) string {
				switch {
				case strings.Contains(cmd, "RCPT TO:<nouser@"):
					return "550 5.1.1 no such user"
				case cmd == "DOT <full@x.test>":
					return "452 4.2.2 mailbox full"
				case cmd == "DOT <quota@x.test>":
					return "552 5.2.2 over quota for good"
				}
				return ""
			})
			l := &LMTP{Network: network, Address: s.ln.Addr().String(), Hostname: "mx.postern.test", Timeout: 2 * time.Second}
			errs := l.Deliver(context.Background(), "a@src.test",
				[]string{"ok@x.test", "nouser@x.test", "full@x.test", "quota@x.test", "ok2@x.test"}, lmtpMsg)
			check(t, errs, "", "perm 550 5.1.1 no such user", "temp 452 4.2.2 mailbox full", "perm 552 5.2.2", "")
			s.mu.Lock()
			defer s.mu.Unlock()
			if len(s.data) != 1 || !bytes.Equal(s.data[0], lmtpMsg) ||
				string(s.raw[0]) != "Subject: x\r\n\r\n..leading dot\r\nbody\r\n.\r\n" {
				t.Errorf("server got %q", s.raw)
			}
			if s.lhlo[0] != "mx.postern.test" {
				t.Errorf("LHLO %q", s.lhlo)
			}
		})
	}
}

func TestLMTPFailures(t *testing.T) {
	for _, c := range []struct {
		name  string
		reply func(string) string
		want  []string
	}{
		{"greeting 4xx", func(cmd string) string {
			if cmd == "GREETING" {
				return "421 4.3.2 busy"
			}
			return ""
		}, []string{"temp 421", "temp 421"}},
		{"greeting 5xx", func(cmd string) string {
			if cmd == "GREETING" {
				return "554 5.3.2 no service"
			}
			return ""
		}, []string{"temp 554", "temp 554"}},
		{"LHLO 5xx", func(cmd string) string {
			if strings.HasPrefix(cmd, "LHLO") {
				return "500 5.5.1 no"
			}
			return ""
		}, []string{"temp LHLO", "temp LHLO"}},
		{"MAIL 5xx", func(cmd string) string {
			if strings.HasPrefix(cmd, "MAIL") {
				return "550 5.7.1 sender refused"
			}
			return ""
		}, []string{"perm sender refused", "perm sender refused"}},
		{"DATA 4xx", func(cmd string) string {
			if cmd == "DATA" {
				return "451 4.3.0 later"
			}
			return ""
		}, []string{"temp later", "temp later"}},
		{"no recipient", func(cmd string) string {
			if strings.HasPrefix(cmd, "RCPT") {
				return "550 5.1.1 unknown"
			}
			if cmd == "DATA" {
				panic("DATA without recipients")
			}
			return ""
		}, []string{"perm unknown", "perm unknown"}},
		{"drop after first reply", func(cmd string) string {
			if cmd == "DOT <b@x.test>" {
				return "DROP"
			}
			return ""
		}, []string{"", "temp end of DATA"}},
		{"drop at MAIL", func(cmd string) string {
			if strings.HasPrefix(cmd, "MAIL") {
				return "DROP"
			}
			return ""
		}, []string{"temp MAIL FROM", "temp MAIL FROM"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newFakeLMTP(t, "tcp", "127.0.0.5:0", c.reply)
			l := &LMTP{Network: "tcp", Address: s.ln.Addr().String(), Hostname: "h", Timeout: 2 * time.Second}
			check(t, l.Deliver(context.Background(), "", []string{"a@x.test", "b@x.test"}, lmtpMsg), c.want...)
		})
	}
}

func TestLMTPConnectFailure(t *testing.T) {
	l := &LMTP{Network: "unix", Address: filepath.Join(t.TempDir(), "none.sock"), Hostname: "h", Timeout: time.Second}
	check(t, l.Deliver(context.Background(), "", []string{"a@x.test"}, lmtpMsg), "temp connect")
}

func TestLMTPHang(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.5:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			io.Copy(io.Discard, c) // never greets
		}
	}()
	l := &LMTP{Network: "tcp", Address: ln.Addr().String(), Hostname: "h", Timeout: 200 * time.Millisecond}
	start := time.Now()
	check(t, l.Deliver(context.Background(), "", []string{"a@x.test"}, lmtpMsg), "temp timeout")
	if time.Since(start) > 2*time.Second {
		t.Errorf("took %v", time.Since(start))
	}
}

func TestLMTPBadAddresses(t *testing.T) {
	s := newFakeLMTP(t, "tcp", "127.0.0.5:0", nil)
	l := &LMTP{Network: "tcp", Address: s.ln.Addr().String(), Hostname: "h", Timeout: 2 * time.Second}
	check(t, l.Deliver(context.Background(), "", []string{"a@x.test", "b@x.test>\r\nRSET"}, lmtpMsg), "", "perm bad recipient")
	check(t, l.Deliver(context.Background(), "a\r\n@x", []string{"a@x.test"}, lmtpMsg), "perm bad sender")
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.data) != 1 {
		t.Errorf("server got %d messages, want 1", len(s.data))
	}
}
