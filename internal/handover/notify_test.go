package handover

import (
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// notifySocket listens on a unix datagram socket at addr, as systemd's
// notification socket, and returns it.
func notifySocket(t *testing.T, addr string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readNotify reads one notification and the files it carries.
func readNotify(t *testing.T, c *net.UnixConn) (string, []int) {
	t.Helper()
	buf, oob := make([]byte, 4096), make([]byte, 1024)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		t.Fatalf("no notification: %v", err)
	}
	var fds []int
	msgs, err := syscall.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		rights, err := syscall.ParseUnixRights(&m)
		if err != nil {
			t.Fatal(err)
		}
		fds = append(fds, rights...)
	}
	return string(buf[:n]), fds
}

func testNotifier(addr string) *Notifier {
	return &Notifier{addr: addr, log: slog.New(slog.DiscardHandler)}
}

func TestNotifyPathAndAbstract(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	abstract := "@postern-test-" + strconv.Itoa(os.Getpid())
	for _, addr := range []string{path, abstract} {
		c := notifySocket(t, addr)
		n := testNotifier(addr)
		n.Ready()
		got, _ := readNotify(t, c)
		want := "READY=1\nMAINPID=" + strconv.Itoa(os.Getpid()) + "\n"
		if !strings.HasPrefix(got, want) {
			t.Errorf("%s: ready sent %q, want %q...", addr, got, want)
		}
		n.Reloading("restarting")
		got, _ = readNotify(t, c)
		if !strings.HasPrefix(got, "RELOADING=1\nSTATUS=restarting\nMONOTONIC_USEC=") {
			t.Errorf("%s: reloading sent %q", addr, got)
		}
		n.Stopping()
		if got, _ = readNotify(t, c); !strings.HasPrefix(got, "STOPPING=1\n") {
			t.Errorf("%s: stopping sent %q", addr, got)
		}
	}
}

func TestNotifyNoSocket(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	n := NewNotifier(slog.New(slog.DiscardHandler))
	if err := n.Send("READY=1", nil); err != nil {
		t.Errorf("send without NOTIFY_SOCKET: %v", err)
	}
	if err := n.Barrier(time.Second); err != nil {
		t.Errorf("barrier without NOTIFY_SOCKET: %v", err)
	}
	t.Setenv("NOTIFY_SOCKET", "vsock:2:1234")
	if n := NewNotifier(slog.New(slog.DiscardHandler)); n.addr != "" {
		t.Errorf("unsupported NOTIFY_SOCKET kept: %q", n.addr)
	}
	// A socket nobody listens on is an error for send, never a panic
	// or a hang.
	if err := testNotifier(filepath.Join(t.TempDir(), "gone")).Send("READY=1", nil); err == nil {
		t.Error("send to a missing socket: no error")
	}
}

// TestNotifyBarrier: barrier returns once the manager closed the pipe it
// was sent, and not before; without an answer it gives up at its timeout.
func TestNotifyBarrier(t *testing.T) {
	addr := filepath.Join(t.TempDir(), "notify")
	c := notifySocket(t, addr)
	n := testNotifier(addr)
	done := make(chan error, 1)
	go func() { done <- n.Barrier(5 * time.Second) }()
	msg, fds := readNotify(t, c)
	if msg != "BARRIER=1" || len(fds) != 1 {
		t.Fatalf("barrier sent %q with %d files, want BARRIER=1 with 1", msg, len(fds))
	}
	select {
	case err := <-done:
		t.Fatalf("barrier returned %v before its pipe was closed", err)
	case <-time.After(50 * time.Millisecond):
	}
	syscall.Close(fds[0])
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("barrier: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("barrier did not return after its pipe was closed")
	}

	go func() { done <- n.Barrier(100 * time.Millisecond) }()
	_, fds = readNotify(t, c)
	defer syscall.Close(fds[0])
	select {
	case err := <-done:
		if err == nil {
			t.Error("barrier with no answer: no error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("barrier did not give up at its timeout")
	}
}

// TestNotifyManagerNotReading: a manager that stops reading does not
// hold the server up: once its queue is full, Send fails after its
// timeout instead of blocking (go-systemd's daemon.SdNotify blocks for
// good there).
func TestNotifyManagerNotReading(t *testing.T) {
	addr := filepath.Join(t.TempDir(), "notify")
	notifySocket(t, addr) // never read
	n := testNotifier(addr)
	done := make(chan error, 1)
	go func() {
		for range 10000 {
			if err := n.Send("STATUS=x", nil); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("10000 notifications queued to a manager that reads none: no limit seen")
		}
		if !errors.Is(err, syscall.EAGAIN) {
			t.Errorf("Send to a full queue: %v, want EAGAIN after the send timeout", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Send blocked on a manager that reads nothing")
	}
}
