package handover

import (
	"bytes"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"postern/internal/testkit"
)

func TestParseListenEnv(t *testing.T) {
	const self = 4242
	for _, c := range []struct {
		name             string
		pid, nfds, names string
		handover         bool
		wantN            int
		wantNames        []string
		wantErr          bool
	}{
		{"systemd", "4242", "2", "mx:http", false, 2, []string{"mx", "http"}, false},
		{"no names", "4242", "1", "", false, 1, nil, false},
		{"another process's", "4243", "2", "mx:http", false, 0, nil, false},
		{"no LISTEN_PID", "", "2", "mx:http", false, 0, nil, false},
		{"graceful restart: no LISTEN_PID needed", "", "2", "mx:http", true, 2, []string{"mx", "http"}, false},
		{"nothing", "", "", "", false, 0, nil, false},
		{"not a number", "4242", "two", "", false, 0, nil, true},
		{"negative", "4242", "-1", "", false, 0, nil, true},
		{"too many", "4242", "65", "", false, 0, nil, true},
	} {
		n, names, err := parseListenEnv(c.pid, c.nfds, c.names, c.handover, self)
		if (err != nil) != c.wantErr || n != c.wantN || strings.Join(names, ":") != strings.Join(c.wantNames, ":") {
			t.Errorf("%s: %d %q %v; want %d %q, error %v", c.name, n, names, err, c.wantN, c.wantNames, c.wantErr)
		}
		if err != nil && !strings.Contains(err.Error(), "bad LISTEN_FDS") {
			t.Errorf("%s: error %v does not name LISTEN_FDS", c.name, err)
		}
	}
}

// dupAt puts a duplicate of c's socket at fd and returns fd.
func dupAt(t *testing.T, c syscall.Conn, fd int) {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var derr error
	rc.Control(func(s uintptr) { derr = unix.Dup3(int(s), fd, unix.O_CLOEXEC) })
	if derr != nil {
		t.Fatal(derr)
	}
	t.Cleanup(func() { syscall.Close(fd) })
}

// The fds the tests pass sockets at, high enough to be free.
const testFD = 900

// TestPassedSockets: passed listening sockets are taken under their
// names and logged with who passed them.
func TestPassedSockets(t *testing.T) {
	a, b := testkit.Listen(t), testkit.Listen(t)
	dupAt(t, a.(*net.TCPListener), testFD)
	dupAt(t, b.(*net.TCPListener), testFD+1)
	var log bytes.Buffer
	p, err := takeSockets(testFD, 2, []string{"mx"}, "the old process", slog.New(slog.NewTextHandler(&log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, s := range p.Sockets {
			s.Listener.Close()
		}
	}()
	if p.From != "the old process" || len(p.Sockets) != 2 || p.Sockets[0].Name != "mx" || p.Sockets[1].Name != "" {
		t.Fatalf("passed %+v", p)
	}
	if p.Sockets[0].Listener.Addr().String() != a.Addr().String() {
		t.Errorf("socket mx at %s, want %s", p.Sockets[0].Listener.Addr(), a.Addr())
	}
	want := `msg="socket from the old process" fd=900 name=mx address=` + a.Addr().String()
	if !strings.Contains(log.String(), want) {
		t.Errorf("log %q lacks %q", log.String(), want)
	}
}

// TestPassedSocketsRefused: a passed fd that is not a listening socket
// fails the start, naming the fd, and closes the sockets taken before
// it (go-systemd's activation.Listeners drops it without a word).
func TestPassedSocketsRefused(t *testing.T) {
	a := testkit.Listen(t)
	u, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	dupAt(t, a.(*net.TCPListener), testFD)
	dupAt(t, u.(*net.UDPConn), testFD+1)
	_, err = takeSockets(testFD, 2, []string{"mx", "smtp-udp"}, "systemd", slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), `socket from systemd: fd 901 ("smtp-udp")`) {
		t.Fatalf("a UDP socket passed: %v, want an error naming fd 901", err)
	}
}
