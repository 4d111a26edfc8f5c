package remote

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"postern/internal/delivery/policy"
	"postern/internal/smtp"
	"postern/internal/testkit"
)

// startSink runs Postfix's smtp-sink on ip, dumping each message into a
// file in a new directory, and returns its address and the directory. It
// skips the test when smtp-sink is missing, unless POSTERN_INTEGRATION=1.
func startSink(t testing.TB, ip string) (addr, dir string) {
	t.Helper()
	bin, err := exec.LookPath("smtp-sink")
	if err != nil {
		bin = "/usr/sbin/smtp-sink"
		if _, err := os.Stat(bin); err != nil {
			if os.Getenv("POSTERN_INTEGRATION") == "1" {
				t.Fatalf("smtp-sink not found (POSTERN_INTEGRATION=1): %v", err)
			}
			t.Skip("smtp-sink (Postfix) not installed; set POSTERN_INTEGRATION=1 to require it")
		}
	}
	dir, err = os.MkdirTemp("", "postern-sink-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o777) // smtp-sink drops privileges to nobody
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	addr = ln.Addr().String()
	ln.Close()
	args := []string{"-d", filepath.Join(dir, "msg."), addr, "64"}
	if os.Geteuid() == 0 {
		args = append([]string{"-u", "nobody"}, args...)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
	})
	for deadline := time.Now().Add(3 * time.Second); ; {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("smtp-sink did not start: %v; %s", err, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return addr, dir
}

// TestInteropSmtpSink delivers to Postfix's smtp-sink over pooled
// sessions and checks each message arrived byte-identical. smtp-sink
// stores lines with LF endings, prepends its trace fields and appends an
// empty line; the comparison undoes exactly that.
func TestInteropSmtpSink(t *testing.T) {
	addr, dir := startSink(t, "127.0.0.6")
	f := newFixture(t, []policy.Host{mx("sink.test", policy.Opportunistic, &fakeServer{Addr: addr})})
	f.dialer.m["127.0.0.6:25"] = addr
	bodies := [][]byte{
		[]byte("Subject: one\r\n\r\nplain body\r\n"),
		[]byte("Subject: dots\r\n\r\n.\r\n..\r\n.leading\r\n. space\r\nend\r\n"),
		[]byte("Subject: 8bit\r\n\r\ncaf\xc3\xa9 \xff\xfe\r\n" + strings.Repeat("x", 998) + "\r\n"),
	}
	for i, body := range bodies {
		msg := &Message{ID: fmt.Sprint(i), From: "a@src.test", Rcpts: []string{fmt.Sprintf("r%d@sink.test", i)},
			Data: &smtp.Message{Header: body}, EightBit: i == 2}
		res := f.one(t, msg)
		delivered(t, res)
	}
	if conns := f.dialer.dials; conns != 1 {
		t.Errorf("dials %d, want 1 (pooled)", conns)
	}
	var files []string
	testkit.WaitFor(t, fmt.Sprintf("smtp-sink storing %d messages", len(bodies)), func() bool {
		files, _ = filepath.Glob(filepath.Join(dir, "msg.*"))
		return len(files) == len(bodies)
	})
	var got []string
	for _, fn := range files {
		b, err := os.ReadFile(fn)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(b))
	}
	for i, body := range bodies {
		want := string(bytes.ReplaceAll(body, []byte("\r\n"), []byte("\n"))) + "\n"
		found := false
		for _, g := range got {
			if strings.Contains(g, "X-Rcpt-Args: <"+fmt.Sprintf("r%d@sink.test", i)+">\n") && strings.HasSuffix(g, want) {
				_, after, _ := strings.Cut(g, "\tby smtp-sink")
				_, after, _ = strings.Cut(after, "\n\t")
				_, after, _ = strings.Cut(after, "\n")
				if after == want {
					found = true
				}
			}
		}
		if !found {
			t.Errorf("message %d not stored byte-identical; stored: %q", i, got)
		}
	}
}
