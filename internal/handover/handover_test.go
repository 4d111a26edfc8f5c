package handover

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"postern/internal/testkit"
)

// socketPair returns both ends of a unix stream socket pair: the old
// process's as a net.Conn, the new process's as a file.
func socketPair(t *testing.T) (net.Conn, *os.File) {
	t.Helper()
	p, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(p[0]), "old")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	child := os.NewFile(uintptr(p[1]), "new")
	t.Cleanup(func() { c.Close(); child.Close() })
	return c, child
}

// fakeRestart is a restart whose "new process" is a sleep: it answers
// only what the test writes on the other end.
func fakeRestart(t *testing.T) (*Restart, *os.File) {
	t.Helper()
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep(1)")
	}
	proc, err := os.StartProcess(sleep, []string{"sleep", "60"}, &os.ProcAttr{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proc.Kill() })
	conn, child := socketPair(t)
	r := &Restart{conn: conn, lines: make(chan string, 4), exited: make(chan struct{})}
	r.watch(proc)
	return r, child
}

func exited(r *Restart) bool {
	select {
	case <-r.exited:
		return true
	case <-time.After(5 * time.Second):
		return false
	}
}

// TestRestartProtocol: the old and the new process's ends of the
// handover agree: ready 2, released, serving.
func TestRestartProtocol(t *testing.T) {
	r, f := fakeRestart(t)
	h := &Child{f: f, proto2: true}
	h.Ready(slog.New(slog.DiscardHandler))
	if err := r.WaitReady(5 * time.Second); err != nil || !r.proto2 {
		t.Fatalf("waitReady: %v (protocol 2: %v)", err, r.proto2)
	}
	got := make(chan bool, 1)
	go func() { got <- h.released() }()
	if err := r.Release(); err != nil {
		t.Fatal(err)
	}
	if !<-got {
		t.Fatal("released: the new process did not read the release")
	}
	h.Serving()
	if err := r.WaitServing(5 * time.Second); err != nil {
		t.Fatalf("waitServing: %v", err)
	}
	select {
	case <-r.exited:
		t.Error("the new process was killed although it serves")
	default:
	}
}

// TestRestartServingTimeout: a new process that says nothing after the
// release is killed at the timeout, and reaped before waitServing
// returns (it holds neither spool nor sockets then).
func TestRestartServingTimeout(t *testing.T) {
	r, f := fakeRestart(t)
	io.WriteString(f, msgReady2+"\n")
	if err := r.WaitReady(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := r.WaitServing(200 * time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "no answer within") {
		t.Fatalf("waitServing: %v, want a timeout", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("waitServing took %v with a 200ms timeout", d)
	}
	select {
	case <-r.exited:
	default:
		t.Fatal("waitServing returned before the new process was reaped")
	}
	if !strings.Contains(r.status, "killed") {
		t.Errorf("new process status %q, want killed", r.status)
	}
}

// TestRestartNewProcessExits: a new process that exits after ready is
// seen as failed at once, with how it exited.
func TestRestartNewProcessExits(t *testing.T) {
	r, f := fakeRestart(t)
	io.WriteString(f, msgReady2+"\n")
	if err := r.WaitReady(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	r.proc.Signal(syscall.SIGTERM)
	f.Close() // as the exit of the real new process does
	if !exited(r) {
		t.Fatal("the sleep did not exit")
	}
	err := r.WaitServing(time.Minute)
	if err == nil || !strings.Contains(err.Error(), "exited") {
		t.Fatalf("waitServing: %v, want an exit", err)
	}
}

// TestRestartOlderNewProcess: a new process of an older version says
// "ready" and nothing more; the old process then neither sends the
// release nor waits for "serving".
func TestRestartOlderNewProcess(t *testing.T) {
	r, f := fakeRestart(t)
	h := &Child{f: f} // no POSTERN_HANDOVER_PROTOCOL: what an older old process starts
	h.Ready(slog.New(slog.DiscardHandler))
	if err := r.WaitReady(5 * time.Second); err != nil || r.proto2 {
		t.Fatalf("waitReady: %v (protocol 2: %v)", err, r.proto2)
	}
	if err := r.Release(); err != nil {
		t.Errorf("release: %v", err)
	}
	if err := r.WaitServing(time.Minute); err != nil {
		t.Errorf("waitServing: %v", err)
	}
	if h.released() {
		t.Error("a new process started by an older old process counts on a release it never gets")
	}
}

// TestHandoverChildOldProcessGone: when the old process exits without
// releasing the spool, the new one opens it with retries.
func TestHandoverChildOldProcessGone(t *testing.T) {
	conn, f := socketPair(t)
	h := &Child{f: f, proto2: true}
	h.Ready(slog.New(slog.DiscardHandler))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || line != msgReady2+"\n" {
		t.Fatalf("ready sent %q, %v", line, err)
	}
	conn.Close()
	if h.released() {
		t.Error("released after the old process closed the channel without a word")
	}
}

// TestRestartKeepsSockets: the duplicates kept for a failed restart
// accept connections to the same port once the original is closed.
func TestRestartKeepsSockets(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := l.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	r := &Restart{names: []string{"mx"}, kept: []*os.File{f}}
	addr := l.Addr().String()
	c, err := net.Dial("tcp", addr) // waits in the backlog across the close
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	l.Close()
	socks, err := r.Sockets()
	if err != nil {
		t.Fatal(err)
	}
	defer socks.Close()
	if r.kept != nil {
		t.Error("the duplicates were not closed")
	}
	nl := socks.Get("mx")
	if nl == nil || nl.Addr().String() != addr {
		t.Fatalf("sockets kept: %v", socks.Names())
	}
	nl.(*net.TCPListener).SetDeadline(time.Now().Add(5 * time.Second))
	ac, err := nl.Accept()
	if err != nil {
		t.Fatalf("the connection made before the close was not accepted on the kept socket: %v", err)
	}
	ac.Close()
}

// TestChildFail: a new process that fails says why, on one line, before
// it is ready and after the release alike; the old process's error
// carries it. After it served, or with an older old process, the error
// is not sent: the caller reports it.
func TestChildFail(t *testing.T) {
	r, f := fakeRestart(t)
	h := &Child{f: f, proto2: true}
	if !h.Fail(errors.New("config: line 1:\n  expected '='")) {
		t.Fatal("Fail before ready: not sent")
	}
	err := r.WaitReady(5 * time.Second)
	if err == nil || !strings.Contains(err.Error(), "not ready: it failed: config: line 1: expected '='") {
		t.Fatalf("WaitReady: %v, want the new process's error", err)
	}
	if !exited(r) {
		t.Error("the failed new process was not reaped")
	}

	r, f = fakeRestart(t)
	h = &Child{f: f, proto2: true}
	h.Ready(slog.New(slog.DiscardHandler))
	if err := r.WaitReady(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	go r.Release()
	if !h.released() {
		t.Fatal("release not read")
	}
	if !h.Fail(errors.New("queue: open spool: not a directory")) {
		t.Fatal("Fail after the release: not sent")
	}
	err = r.WaitServing(5 * time.Second)
	if err == nil || !strings.Contains(err.Error(), "not serving: it failed: queue: open spool: not a directory") {
		t.Fatalf("WaitServing: %v, want the new process's error", err)
	}

	_, f = fakeRestart(t)
	h = &Child{f: f, proto2: true}
	h.log = slog.New(slog.DiscardHandler)
	h.Serving()
	if h.Fail(errors.New("late")) {
		t.Error("Fail after serving: sent to an old process that is gone")
	}
	_, f = fakeRestart(t)
	if (&Child{f: f}).Fail(errors.New("x")) {
		t.Error("Fail to an older old process, which cannot read it: sent")
	}
	var none *Child
	if none.Fail(errors.New("x")) {
		t.Error("Fail without a graceful restart: sent")
	}
}

// TestSockets: names keep the order added; a name added again keeps its
// place; Listen names what is missing.
func TestSockets(t *testing.T) {
	var s Sockets
	a, b := testkit.Listen(t), testkit.Listen(t)
	s.Add("mx", a)
	s.Add("http", b)
	s.Add("mx", b)
	if got := s.Names(); !slices.Equal(got, []string{"mx", "http"}) {
		t.Errorf("Names = %v", got)
	}
	if s.Get("mx") != b || s.Get("none") != nil {
		t.Error("Get returns the wrong listener")
	}
	if _, err := s.Listen("admin", "127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "no socket admin bound for 127.0.0.1:1") {
		t.Errorf("Listen of a missing socket: %v", err)
	}
}

// handOverOld returns an Old whose drain waits for ctx when block is
// set, and the log of what it was asked to do.
func handOverOld(sigs chan os.Signal, block bool) (*Old, *syncLog) {
	var log syncLog
	return &Old{
		Log: slog.New(slog.DiscardHandler),
		Drain: func(ctx context.Context) bool {
			log.add("drain")
			if block {
				<-ctx.Done()
				return false
			}
			return true
		},
		DrainTimeout: time.Minute,
		Stop:         func() { log.add("stop") },
		Signals:      sigs,
		Reload:       func() { log.add("reload") },
		Stopping:     func() { log.add("stopping") },
	}, &log
}

type syncLog struct {
	mu sync.Mutex
	s  []string
}

func (l *syncLog) add(s string) { l.mu.Lock(); l.s = append(l.s, s); l.mu.Unlock() }
func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.s, " ")
}

// readyChild starts a fake restart whose new process said "ready 2".
func readyChild(t *testing.T) (*Restart, *Child) {
	t.Helper()
	r, f := fakeRestart(t)
	h := &Child{f: f, proto2: true}
	h.Ready(slog.New(slog.DiscardHandler))
	if err := r.WaitReady(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	return r, h
}

// TestOldHandOver: the old process drains, stops, releases the spool
// and returns nothing to serve on once the new process serves; when the
// new process fails after the release it gets its sockets back with the
// cause; a SIGTERM meanwhile ends the drain at once and the old process
// stops whatever the new one does; SIGHUP reloads.
func TestOldHandOver(t *testing.T) {
	t.Run("serves", func(t *testing.T) {
		r, h := readyChild(t)
		sigs := make(chan os.Signal, 1)
		o, log := handOverOld(sigs, false)
		go func() {
			if h.released() {
				h.Serving()
			}
		}()
		socks, err := o.HandOver(r)
		if socks != nil || err != nil {
			t.Fatalf("HandOver = %v, %v; want nil, nil", socks, err)
		}
		if log.String() != "drain stop" {
			t.Errorf("asked to %q", log)
		}
	})
	t.Run("fails after the release", func(t *testing.T) {
		r, h := readyChild(t)
		o, _ := handOverOld(make(chan os.Signal), false)
		go func() {
			if h.released() {
				h.Fail(errors.New("queue: open spool: not a directory"))
			}
		}()
		socks, err := o.HandOver(r)
		if socks == nil || err == nil || !strings.Contains(err.Error(), "not a directory") {
			t.Fatalf("HandOver = %v, %v; want the sockets kept and the cause", socks, err)
		}
	})
	t.Run("SIGHUP, then SIGTERM during the drain", func(t *testing.T) {
		r, h := readyChild(t)
		sigs := make(chan os.Signal, 2)
		o, log := handOverOld(sigs, true)
		sigs <- syscall.SIGHUP
		sigs <- syscall.SIGTERM
		go func() {
			if h.released() {
				h.Fail(errors.New("late"))
			}
		}()
		done := make(chan error, 1)
		go func() {
			socks, err := o.HandOver(r)
			if socks != nil {
				err = fmt.Errorf("sockets returned to serve on after a stop: %v", socks.Names())
			}
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("SIGTERM did not end the drain")
		}
		// The signals are handled beside the drain: only their order,
		// and the stop last, are fixed.
		got := log.String()
		i, j := strings.Index(got, "reload"), strings.Index(got, "stopping")
		if !strings.Contains(got, "drain") || i < 0 || j < i || !strings.HasSuffix(got, " stop") {
			t.Errorf("asked to %q, want drain, reload then stopping, and stop last", got)
		}
	})
}
