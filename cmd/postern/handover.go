package main

// Graceful restart (SIGUSR2): the running server starts the binary at its
// own path with the same arguments and hands it every listening socket,
// so that no connection is refused while the binary is replaced.
//
// The sequence (docs/operations.md, "Graceful restart"):
//
//  1. old: on SIGUSR2, starts the new process with the TCP listeners as
//     fds 3.. (LISTEN_FDS, LISTEN_FDNAMES = listener names) and the write
//     end of a pipe after them; POSTERN_HANDOVER names that pipe's fd and
//     stands in for LISTEN_PID, which the parent cannot know before exec.
//  2. new: loads the configuration, the certificates and the users, takes
//     the sockets (binds none it was given), and writes "ready" to the pipe.
//  3. old: on "ready", stops accepting (closes its copies of the sockets:
//     the new process's copies keep them listening, so the kernel queues
//     new connections in the backlog), drains sessions as on SIGTERM,
//     closes the admin socket and the spool, and exits 0. If the new
//     process exits or says nothing within handoverReadyTimeout, it is
//     killed and the old process keeps serving.
//  4. new: opens the spool as soon as the old process has released it
//     (retrying for up to handoverSpoolTimeout), then serves, and accepts
//     the connections waiting in the backlog.

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"postern/internal/queue"
)

// handoverEnv names the variable that marks a process started by a
// graceful restart; its value is the fd of the readiness pipe.
const handoverEnv = "POSTERN_HANDOVER"

const (
	handoverReadyTimeout = time.Minute     // the new process's time to load
	handoverSpoolTimeout = 2 * time.Minute // its time to get the spool
)

// handover records the sockets serve listens on, by name, so that a
// graceful restart can pass them to the new process.
type handover struct {
	names []string
	ls    []net.Listener
}

// record wraps listen so that each listener it returns is recorded.
func (h *handover) record(listen func(name, addr string) (net.Listener, error)) func(name, addr string) (net.Listener, error) {
	return func(name, addr string) (net.Listener, error) {
		l, err := listen(name, addr)
		if err == nil {
			h.names = append(h.names, name)
			h.ls = append(h.ls, l)
		}
		return l, err
	}
}

// start starts the new process with the recorded sockets and waits until
// it reports that it loaded its configuration. On an error the new
// process is gone and the caller keeps serving.
//
// It uses syscall.ForkExec with the sockets' raw fds: os/exec would call
// (*os.File).Fd on each, which puts the socket (the open file description
// this process's listener shares) into blocking mode, and a blocking
// accept is not woken when the listener is closed.
func (h *handover) start(log *slog.Logger, timeout time.Duration) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("handover: %w", err)
	}
	fds := []uintptr{0, 1, 2}
	for i, l := range h.ls {
		sc, ok := l.(syscall.Conn)
		if !ok {
			return fmt.Errorf("handover: listener %s: cannot pass a %T", h.names[i], l)
		}
		rc, err := sc.SyscallConn()
		if err != nil {
			return fmt.Errorf("handover: listener %s: %w", h.names[i], err)
		}
		// The fd stays valid: the listeners are closed only by this
		// goroutine's caller, after start returns.
		if err := rc.Control(func(fd uintptr) { fds = append(fds, fd) }); err != nil {
			return fmt.Errorf("handover: listener %s: %w", h.names[i], err)
		}
	}
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		return fmt.Errorf("handover: pipe: %w", err)
	}
	r := os.NewFile(uintptr(p[0]), "handover-ready")
	defer r.Close()
	fds = append(fds, uintptr(p[1]))
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LISTEN_") && !strings.HasPrefix(kv, handoverEnv+"=") {
			env = append(env, kv)
		}
	}
	env = append(env,
		"LISTEN_FDS="+strconv.Itoa(len(h.ls)),
		"LISTEN_FDNAMES="+strings.Join(h.names, ":"),
		handoverEnv+"="+strconv.Itoa(listenFDsStart+len(h.ls)))
	pid, err := syscall.ForkExec(exe, os.Args, &syscall.ProcAttr{Env: env, Files: fds})
	syscall.Close(p[1]) // the child holds the write end: EOF when it exits
	if err != nil {
		return fmt.Errorf("handover: start %s: %w", exe, err)
	}
	proc, _ := os.FindProcess(pid) // never fails on Unix
	log.Info("graceful restart: new process started", "pid", pid, "binary", exe)
	r.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, 6)
	_, err = io.ReadFull(r, buf)
	if err == nil && string(buf) != "ready\n" {
		err = fmt.Errorf("unexpected %q", buf)
	}
	if err != nil {
		proc.Kill()
		st, werr := proc.Wait()
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			err = errors.New("exited before it was ready")
			if werr == nil {
				err = fmt.Errorf("exited before it was ready (%v)", st)
			}
		}
		return fmt.Errorf("handover: new process (pid %d): %w", pid, err)
	}
	go proc.Wait() // reaps it if it exits before this process does
	log.Info("graceful restart: new process ready; handing over", "pid", pid)
	return nil
}

// handoverChild returns the readiness pipe when this process was started
// by a graceful restart, or nil. It leaves handoverEnv set for
// activationListeners, which unsets it.
func handoverChild() *os.File {
	v := os.Getenv(handoverEnv)
	if v == "" {
		return nil
	}
	fd, err := strconv.Atoi(v)
	if err != nil || fd < listenFDsStart {
		return nil
	}
	syscall.CloseOnExec(fd)
	return os.NewFile(uintptr(fd), "handover-ready")
}

// handoverReady tells the old process that this one loaded fine.
func handoverReady(ready *os.File, log *slog.Logger) {
	if ready == nil {
		return
	}
	if _, err := ready.Write([]byte("ready\n")); err != nil {
		log.Warn("graceful restart: readiness not sent", "err", err)
	}
	ready.Close()
	log.Info("graceful restart: waiting for the old process to release the spool")
}

// openSpoolHandover opens the spool; after a graceful restart it retries
// while the old process still holds it, for up to handoverSpoolTimeout.
func openSpoolHandover(opts queue.Options, handover bool) (*queue.Spool, error) {
	deadline := time.Now().Add(handoverSpoolTimeout)
	for {
		s, err := queue.Open(opts)
		if err == nil || !handover || time.Now().After(deadline) {
			return s, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}
