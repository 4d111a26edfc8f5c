package main

// Graceful restart (SIGUSR2): the running server starts the binary at its
// own path with the same arguments and hands it every listening socket,
// so that no connection is refused while the binary is replaced, lets
// its own sessions finish, and comes back if the new process fails.
//
// The sequence (docs/operations.md, "Graceful restart"):
//
//  1. old: on SIGUSR2, keeps a duplicate of each listening socket, and
//     starts the new process with the sockets as fds 3.. (LISTEN_FDS,
//     LISTEN_FDNAMES = socket names) and its end of a unix socket pair
//     after them: POSTERN_HANDOVER names that fd and stands in for
//     LISTEN_PID, which the parent cannot know before exec, and
//     POSTERN_HANDOVER_PROTOCOL=2 says that the old process speaks what
//     follows.
//  2. new: loads the configuration, the certificates and the users, takes
//     the sockets and binds the ones it was not given, and sends "ready".
//     If it exits first, or says nothing within handoverReadyTimeout, the
//     old process kills it and goes on serving: nothing happened.
//  3. old: on "ready", stops accepting (closes its listeners: the new
//     process's copies keep the sockets listening, so the kernel queues
//     new connections in the backlog), lets its sessions go on as usual
//     for limits.restart_drain_timeout or until they have all ended,
//     then shuts down what remains as on SIGTERM, closes the admin socket
//     and the spool, and sends "released".
//  4. new: opens the spool, serves (accepting the connections waiting
//     in the backlog), tells systemd it is the main process now, and
//     sends "serving".
//  5. old: on "serving", exits 0. If the new process exits first, or does
//     not serve within handoverServingTimeout, the old one kills it,
//     opens the spool again, serves on the duplicates it kept, and logs
//     "graceful restart failed: serving again".
//
// Each message is a line on the socket pair. The protocol variable and
// the "ready 2" answer keep restarts between versions working: a new
// binary started by an older one (which passes a pipe and reads only
// "ready") says "ready", then retries opening the spool until the old
// process has let it go; an older binary started by this one says
// "ready", and the old process then cannot come back after step 3.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"postern/internal/queue"
)

// handoverEnv names the variable that marks a process started by a
// graceful restart; its value is the fd of the channel to the old
// process. handoverProtoEnv names the protocol the old process speaks.
const (
	handoverEnv      = "POSTERN_HANDOVER"
	handoverProtoEnv = "POSTERN_HANDOVER_PROTOCOL"
	handoverProto    = "2"
)

// The lines of the handover protocol.
const (
	msgReady    = "ready"    // new, to an older old process
	msgReady2   = "ready 2"  // new: loaded; "serving" follows
	msgReleased = "released" // old: the spool is closed
	msgServing  = "serving"  // new: the spool is open and the sockets accepted on
)

const (
	handoverReadyTimeout   = time.Minute     // the new process's time to load
	handoverServingTimeout = 2 * time.Minute // its time to open the spool and serve
	handoverSpoolTimeout   = 2 * time.Minute // its time to get the spool from an older old process
)

// restart is a graceful restart in progress, from the old process.
type restart struct {
	pid    int
	proc   *os.Process
	conn   net.Conn
	lines  chan string   // from the new process; closed at EOF
	exited chan struct{} // closed once the new process is reaped
	status string        // how it exited, once exited is closed
	proto2 bool          // it said "ready 2"
	names  []string      // the sockets it was given, in order
	kept   []*os.File    // this process's duplicates of them
}

// startRestart starts the new process with socks and returns once it is
// running; waitReady then waits for it to load. On an error no process
// was started.
//
// It uses syscall.ForkExec with the sockets' raw fds: os/exec would call
// (*os.File).Fd on each, which puts the socket (the open file description
// this process's listener shares) into blocking mode, and a blocking
// accept is not woken when the listener is closed.
func startRestart(log *slog.Logger, socks *sockets) (*restart, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("handover: %w", err)
	}
	r := &restart{lines: make(chan string, 4), exited: make(chan struct{})}
	ok := false
	defer func() {
		if !ok {
			r.closeKept()
		}
	}()
	fds := []uintptr{0, 1, 2}
	for _, name := range socks.names {
		l := socks.ls[name]
		sc, isConn := l.(syscall.Conn)
		fl, isFile := l.(interface{ File() (*os.File, error) })
		if !isConn || !isFile {
			return nil, fmt.Errorf("handover: socket %s: cannot pass a %T", name, l)
		}
		rc, err := sc.SyscallConn()
		if err != nil {
			return nil, fmt.Errorf("handover: socket %s: %w", name, err)
		}
		// The fd stays valid: the listeners are closed only by this
		// goroutine's caller, after the new process started.
		if err := rc.Control(func(fd uintptr) { fds = append(fds, fd) }); err != nil {
			return nil, fmt.Errorf("handover: socket %s: %w", name, err)
		}
		// The duplicate to serve on again if the new process fails
		// (close-on-exec; its Fd is never called, see above).
		f, err := fl.File()
		if err != nil {
			return nil, fmt.Errorf("handover: socket %s: %w", name, err)
		}
		r.names = append(r.names, name)
		r.kept = append(r.kept, f)
	}
	p, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("handover: socketpair: %w", err)
	}
	f := os.NewFile(uintptr(p[0]), "handover")
	r.conn, err = net.FileConn(f)
	f.Close()
	if err != nil {
		syscall.Close(p[1])
		return nil, fmt.Errorf("handover: %w", err)
	}
	fds = append(fds, uintptr(p[1]))
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LISTEN_") && !strings.HasPrefix(kv, handoverEnv) {
			env = append(env, kv)
		}
	}
	env = append(env,
		"LISTEN_FDS="+strconv.Itoa(len(r.names)),
		"LISTEN_FDNAMES="+strings.Join(r.names, ":"),
		handoverEnv+"="+strconv.Itoa(listenFDsStart+len(r.names)),
		handoverProtoEnv+"="+handoverProto)
	pid, err := syscall.ForkExec(exe, os.Args, &syscall.ProcAttr{Env: env, Files: fds})
	syscall.Close(p[1]) // the new process holds its end: EOF when it exits
	if err != nil {
		r.conn.Close()
		return nil, fmt.Errorf("handover: start %s: %w", exe, err)
	}
	ok = true
	proc, _ := os.FindProcess(pid) // never fails on Unix
	r.watch(proc)
	log.Info("graceful restart: new process started", "pid", pid, "binary", exe)
	return r, nil
}

// watch reaps the new process proc when it exits and reads its lines.
func (r *restart) watch(proc *os.Process) {
	r.pid, r.proc = proc.Pid, proc
	go func() {
		st, err := proc.Wait()
		r.status = fmt.Sprint(st)
		if err != nil {
			r.status = err.Error()
		}
		close(r.exited)
	}()
	go func() {
		sc := bufio.NewScanner(r.conn)
		for sc.Scan() {
			r.lines <- sc.Text()
		}
		close(r.lines)
	}()
}

// next returns the next line from the new process, or an error when it
// closed its end (exited, usually) or timeout passed.
func (r *restart) next(timeout time.Duration) (string, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case line, ok := <-r.lines:
		if !ok {
			return "", r.exitError()
		}
		return line, nil
	case <-t.C:
		return "", fmt.Errorf("no answer within %v", timeout)
	}
}

// exitError describes the new process's end, after it closed its end of
// the channel.
func (r *restart) exitError() error {
	select {
	case <-r.exited:
		return fmt.Errorf("it exited (%s)", r.status)
	case <-time.After(time.Second):
		return errors.New("it closed the handover channel")
	}
}

// waitReady waits until the new process has loaded. On an error the new
// process is gone, and this one goes on serving.
func (r *restart) waitReady(timeout time.Duration) error {
	line, err := r.next(timeout)
	switch {
	case err != nil:
	case line == msgReady2:
		r.proto2 = true
		return nil
	case line == msgReady: // an older binary: it never says "serving"
		return nil
	default:
		err = fmt.Errorf("unexpected %q", line)
	}
	r.abort()
	r.closeKept()
	return fmt.Errorf("handover: new process (pid %d) not ready: %w", r.pid, err)
}

// release tells the new process that the spool is closed.
func (r *restart) release() error {
	if !r.proto2 {
		return nil // it retries opening the spool by itself
	}
	r.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := io.WriteString(r.conn, msgReleased+"\n")
	return err
}

// waitServing waits until the new process serves. On an error the new
// process is gone: it exited, or it was killed at timeout.
func (r *restart) waitServing(timeout time.Duration) error {
	if !r.proto2 {
		return nil // an older binary cannot say
	}
	line, err := r.next(timeout)
	if err == nil && line != msgServing {
		err = fmt.Errorf("unexpected %q", line)
	}
	if err != nil {
		r.abort()
		return fmt.Errorf("handover: new process (pid %d) not serving: %w", r.pid, err)
	}
	r.conn.Close()
	return nil
}

// abort kills the new process, unless it is gone already, and waits
// until it is: then it holds neither the spool nor the sockets.
func (r *restart) abort() {
	r.proc.Kill()
	<-r.exited
	r.conn.Close()
}

// listeners returns listeners on the sockets kept, by name, and closes
// the duplicates.
func (r *restart) listeners() (*sockets, error) {
	defer r.closeKept()
	s := &sockets{ls: map[string]net.Listener{}}
	for i, f := range r.kept {
		l, err := net.FileListener(f)
		if err != nil {
			s.closeAll()
			return nil, fmt.Errorf("handover: socket %s: %w", r.names[i], err)
		}
		s.names = append(s.names, r.names[i])
		s.ls[r.names[i]] = l
	}
	return s, nil
}

// closeKept closes the duplicates of the sockets.
func (r *restart) closeKept() {
	for _, f := range r.kept {
		f.Close()
	}
	r.kept = nil
}

// handOver stops serving for a graceful restart, once the new process r
// is ready, and releases the spool to it: the sessions go on as usual for
// limits.restart_drain_timeout or until they have all ended, then the
// rest are shut down as on SIGTERM. It returns nil, nil once the new
// process serves (or is an older version, which cannot say), or after
// SIGTERM or SIGINT meanwhile; otherwise the sockets kept, to serve on
// again, and why the new process failed.
func (b *serveBase) handOver(inst *instance, spool *queue.Spool, r *restart, sigs <-chan os.Signal) (*sockets, error) {
	log, lim := b.log, b.cfg.Limits
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stopAsked atomic.Bool
	quit, watched := make(chan struct{}), make(chan struct{})
	go func() { // the signals, meanwhile
		defer close(watched)
		for {
			select {
			case <-quit:
				return
			case sig := <-sigs:
				switch sig {
				case syscall.SIGHUP:
					reload(log, b.certs, b.db)
				case syscall.SIGUSR2:
					log.Warn("graceful restart in progress: SIGUSR2 ignored")
				default:
					log.Info("graceful restart: stop asked: shutting down the sessions now, no coming back", "signal", sig.String())
					stopAsked.Store(true)
					b.notify.stopping()
					cancel()
				}
			}
		}
	}()
	defer func() { close(quit); <-watched }()

	log.Info("graceful restart: draining: the sessions go on", "for", lim.RestartDrainTimeout)
	dctx, dcancel := context.WithTimeout(ctx, lim.RestartDrainTimeout)
	ended := inst.drain(dctx)
	dcancel()
	switch {
	case ended:
		log.Info("graceful restart: every session ended")
	case ctx.Err() == nil:
		log.Info("graceful restart: limits.restart_drain_timeout passed: shutting down the sessions left")
	}
	log.Info("shutting down", "signal", "SIGUSR2", "deadline", lim.ShutdownTimeout)
	inst.stop(lim.ShutdownTimeout)
	if err := spool.Close(); err != nil {
		log.Error("graceful restart: closing the spool", "err", err)
	}
	if err := r.release(); err != nil {
		log.Warn("graceful restart: the new process was not told the spool is released", "err", err)
	}
	log.Info("graceful restart: spool released; waiting for the new process to serve", "pid", r.pid)
	err := r.waitServing(handoverServingTimeout)
	switch {
	case err == nil:
		r.closeKept()
		if !r.proto2 {
			log.Warn("graceful restart: the new process is an older version, which does not say when it serves: handed over without confirmation", "pid", r.pid)
		} else {
			log.Info("graceful restart: the new process serves", "pid", r.pid)
		}
		return nil, nil
	case stopAsked.Load():
		r.closeKept()
		log.Error("graceful restart failed; stopping, as asked", "err", err)
		return nil, nil
	}
	socks, lerr := r.listeners()
	if lerr != nil {
		return nil, fmt.Errorf("graceful restart failed (%v), and the sockets kept cannot serve again: %w", err, lerr)
	}
	return socks, err
}

// awaitRelease waits, in the new process of a graceful restart, until
// the old process has released the spool; it reports whether it said so
// (released, in handoverChild). SIGTERM and SIGINT end the wait with an
// error.
func (b *serveBase) awaitRelease(child *handoverChild, sigs <-chan os.Signal) (bool, error) {
	done := make(chan bool, 1)
	go func() { done <- child.released() }()
	for {
		select {
		case ok := <-done:
			return ok, nil
		case sig := <-sigs:
			switch sig {
			case syscall.SIGHUP:
				reload(b.log, b.certs, b.db)
			case syscall.SIGUSR2:
				b.log.Warn("graceful restart: not serving yet: SIGUSR2 ignored")
			default:
				return false, fmt.Errorf("serve: %v while waiting for the old process to release the spool", sig)
			}
		}
	}
}

// handoverChild is the new process's end of a graceful restart.
type handoverChild struct {
	f      *os.File
	proto2 bool // the old process speaks protocol 2
	log    *slog.Logger
}

// handoverFromEnv returns the channel to the old process when this
// process was started by a graceful restart, or nil. It leaves
// handoverEnv set for activationListeners, which unsets it.
func handoverFromEnv() *handoverChild {
	v := os.Getenv(handoverEnv)
	proto := os.Getenv(handoverProtoEnv)
	os.Unsetenv(handoverProtoEnv)
	if v == "" {
		return nil
	}
	fd, err := strconv.Atoi(v)
	if err != nil || fd < listenFDsStart {
		return nil
	}
	syscall.CloseOnExec(fd)
	return &handoverChild{f: os.NewFile(uintptr(fd), "handover"), proto2: proto == handoverProto}
}

// ready tells the old process that this one loaded fine; from then on
// the old one stops accepting.
func (h *handoverChild) ready(log *slog.Logger) {
	h.log = log
	msg := msgReady2
	if !h.proto2 {
		msg = msgReady
	}
	if _, err := io.WriteString(h.f, msg+"\n"); err != nil {
		log.Warn("graceful restart: readiness not sent", "err", err)
	}
	if !h.proto2 {
		h.f.Close()
	}
	log.Info("graceful restart: waiting for the old process to release the spool")
}

// released waits until the old process has closed the spool and reports
// whether opening it needs no retry: false when the old process is an
// older version (it says nothing: the spool is free when it exits) or
// when it exited without a word.
func (h *handoverChild) released() bool {
	if !h.proto2 {
		return false
	}
	line, err := bufio.NewReader(h.f).ReadString('\n')
	if err != nil || strings.TrimSuffix(line, "\n") != msgReleased {
		h.log.Warn("graceful restart: the old process did not say it released the spool", "err", err, "got", line)
		return false
	}
	h.log.Info("graceful restart: the old process released the spool")
	return true
}

// serving tells the old process that this one serves; it then exits.
func (h *handoverChild) serving() {
	if !h.proto2 {
		return
	}
	if _, err := io.WriteString(h.f, msgServing+"\n"); err != nil {
		h.log.Warn("graceful restart: serving not sent", "err", err)
	}
	h.f.Close()
}

// openSpoolRetry opens the spool; with retry it tries again while
// another process holds it, for up to handoverSpoolTimeout.
func openSpoolRetry(opts queue.Options, retry bool) (*queue.Spool, error) {
	deadline := time.Now().Add(handoverSpoolTimeout)
	for {
		s, err := queue.Open(opts)
		if err == nil || !retry || time.Now().After(deadline) {
			return s, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}
