package test

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sink runs Postfix's smtp-sink on ip:25 (a real SMTP server as the
// remote MX), writing each message to a file in the returned directory.
func sink(t *testing.T, ip string) string {
	t.Helper()
	bin := postfixTool(t, "smtp-sink")
	dir := sharedTempDir(t, "postern-sink-", 0o777) // smtp-sink runs as nobody
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-u", "nobody", "-d", filepath.Join(dir, "msg."), ip+":25", "64")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", ip+":25")
		if err == nil {
			c.Close()
			return dir
		}
		if time.Now().After(deadline) {
			t.Fatalf("smtp-sink on %s:25 did not start: %v", ip, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sinkHas reports whether smtp-sink stored a message containing marker
// in dir.
func sinkHas(dir, marker string) bool {
	return fileWith(filepath.Join(dir, "msg.*"), marker) != ""
}

// waitSink waits until smtp-sink stored a message containing marker in
// dir, and returns it.
func waitSink(t *testing.T, dir, marker string) string {
	t.Helper()
	var m string
	waitUntil(t, 15*time.Second, fmt.Sprintf("no message with %q reached smtp-sink within 15s", marker), func() bool {
		m = fileWith(filepath.Join(dir, "msg.*"), marker)
		return m != ""
	})
	return m
}

// TestRemoteDeliveryAndBounce submits mail for other domains to the real
// binary: one recipient's domain has an MX (in a DNS server on loopback)
// served by smtp-sink, and arrives there with its body intact; the other's
// domain does not exist, so the sender gets a DSN in her Maildir.
func TestRemoteDeliveryAndBounce(t *testing.T) {
	integration(t)
	sinkDir := sink(t, "127.0.0.77")
	s := testConfig(t, t.TempDir(), "")
	s.mxAt("example.net", "127.0.0.77")
	s.start()
	s.addUser("dora@example.test", "dora-password")

	c := mustDial(t, s.sub, "dora@example.test", "dora-password")
	defer c.Close()
	body := "From: dora@example.test\r\nSubject: remote-marker\r\n\r\nline one\r\n.leading dot\r\nlast line\r\n"
	if err := send(c, "dora@example.test", "eve@example.net", body); err != nil {
		t.Fatalf("submit to a remote domain: %v", err)
	}
	if err := send(c, "dora@example.test", "nobody@nx.example", "From: dora@example.test\r\nSubject: bounce-marker\r\n\r\nx\r\n"); err != nil {
		t.Fatalf("submit to a missing domain: %v", err)
	}

	got := waitSink(t, sinkDir, "remote-marker")
	// smtp-sink stores lines with LF; the body must be exactly ours.
	if !strings.Contains(got, "\nline one\n.leading dot\nlast line\n") {
		t.Errorf("body changed on the way:\n%s", got)
	}
	if !strings.Contains(got, "Received: from ") {
		t.Errorf("no Received header:\n%s", got)
	}

	dsn := s.waitMaildir("dora@example.test", "Content-Type: multipart/report", "report-type=delivery-status")
	for _, want := range []string{"Final-Recipient: rfc822; nobody@nx.example", "Action: failed", "Status: 5.", "Subject: bounce-marker"} {
		if !strings.Contains(dsn, want) {
			t.Errorf("DSN lacks %q:\n%s", want, dsn)
		}
	}
}

// TestQueueCommands manages the queue of a live server with `postern
// queue`: a message deferred by a DNS failure is listed, shown, retried
// and deleted; without the server the command says it is not running.
func TestQueueCommands(t *testing.T) {
	integration(t)
	s := testConfig(t, t.TempDir(), "")
	s.dns.ServFail("stuck.example")
	s.start()
	s.addUser("hank@example.test", "hank-password")
	c := mustDial(t, s.sub, "hank@example.test", "hank-password")
	if err := send(c, "hank@example.test", "someone@stuck.example", "From: hank@example.test\r\nSubject: stuck\r\n\r\nx\r\n"); err != nil {
		t.Fatal(err)
	}
	c.Quit()

	var id string
	deadline := time.Now().Add(10 * time.Second)
	for id == "" {
		out, err := s.run("", "queue", "list")
		if err != nil {
			t.Fatalf("queue list: %v\n%s", err, out)
		}
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, "someone@stuck.example") && strings.Contains(line, "deferred") {
				id = strings.Fields(line)[0]
			}
		}
		if id == "" && time.Now().After(deadline) {
			t.Fatalf("deferred message not listed:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	out, err := s.run("", "queue", "show", id)
	if err != nil || !strings.Contains(out, "someone@stuck.example") || !strings.Contains(out, "Subject: stuck") {
		t.Fatalf("queue show %s: %v\n%s", id, err, out)
	}
	if out, err := s.run("", "queue", "retry", id); err != nil {
		t.Fatalf("queue retry: %v\n%s", err, out)
	}
	if out, err := s.run("", "queue", "delete", id); err != nil {
		t.Fatalf("queue delete: %v\n%s", err, out)
	}
	if out, err := s.run("", "queue", "show", id); err == nil && strings.Contains(out, "deferred") {
		t.Fatalf("message still deferred after delete:\n%s", out)
	}
	if out, err := s.run("", "queue", "show", "nosuchid"); err == nil {
		t.Fatalf("unknown id accepted:\n%s", out)
	}
	if err := s.signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	out, err = s.run("", "queue", "list")
	if err == nil || !strings.Contains(out, "not running") {
		t.Fatalf("queue list without a server: %v\n%s", err, out)
	}
}
