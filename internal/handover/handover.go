// Package handover implements Postern's graceful restart (SIGUSR2), and
// the two systemd interfaces a restart has to keep right: socket
// activation (sd_listen_fds(3)) and service notifications (sd_notify(3)).
//
// In a graceful restart the running server (the old process) starts the
// binary at its own path with the same arguments and hands it every
// listening socket, so that no connection is refused while the binary
// is replaced; it lets its own sessions finish, and comes back if the
// new process fails. The sequence (docs/operations.md, "Graceful
// restart"):
//
//  1. old (Start): keeps a duplicate of each listening socket, and
//     starts the new process with the sockets as fds 3.. (LISTEN_FDS,
//     LISTEN_FDNAMES = socket names) and its end of a unix socket pair
//     after them: POSTERN_HANDOVER names that fd and stands in for
//     LISTEN_PID, which the parent cannot know before exec, and
//     POSTERN_HANDOVER_PROTOCOL=2 says that the old process speaks what
//     follows.
//  2. new (FromEnv, PassedSockets, Child.Ready): loads the
//     configuration, the certificates and the users, takes the sockets
//     and binds the ones it was not given, and sends "ready". If it
//     exits first, or says nothing within ReadyTimeout, the old process
//     kills it and goes on serving: nothing happened (Restart.WaitReady).
//  3. old (Old.HandOver): on "ready", stops accepting (closes its
//     listeners: the new process's copies keep the sockets listening, so
//     the kernel queues new connections in the backlog), lets its
//     sessions go on as usual for the drain timeout or until they have
//     all ended, then shuts down what remains as on SIGTERM, closes the
//     admin socket and the spool, and sends "released".
//  4. new (Child.AwaitRelease, Child.Serving): opens the spool, serves
//     (accepting the connections waiting in the backlog), tells systemd
//     it is the main process now, and sends "serving".
//  5. old: on "serving", exits 0. If the new process exits first, or
//     does not serve within ServingTimeout, the old one kills it, opens
//     the spool again, serves on the duplicates it kept, and logs
//     "graceful restart failed: serving again".
//
// Each message is a line on the socket pair. A new process that fails
// before it serves sends "failed <error>" first (Child.Fail), so that
// the old process logs the cause in its own structured event instead of
// the new process writing a raw line into the log. The protocol
// variable and the "ready 2" answer keep restarts between versions
// working: a new binary started by an older one (which passes a pipe and
// reads only "ready") says "ready", then retries opening the spool until
// the old process has let it go (RetryOpen); an older binary started by
// this one says "ready", and the old process then cannot come back after
// step 3. An old process from before "failed" existed reads it as an
// unexpected line, which its log quotes.
//
// The new process is the old one's child (it is started with
// syscall.ForkExec); under systemd it becomes the main process by
// MAINPID= (Notifier.Ready).
//
// Libraries: coreos/go-systemd v22.7.0 was weighed against this
// package's tests and kept out. Its daemon.SdNotify sends no file
// descriptors, so it cannot do the BARRIER=1 that makes systemd follow
// the new main process before the old one exits (TestNotifyBarrier),
// and it writes without a timeout: with the manager's queue full
// (net.unix.max_dgram_qlen, 10 here) its eleventh message blocked for
// as long as we waited (10 s), where Notifier gives up after 2 s
// (TestNotifyManagerNotReading). Its activation.Files needs
// LISTEN_PID to be this process, which the old process of a graceful
// restart cannot know before exec; it ignores a malformed LISTEN_FDS,
// and activation.Listeners drops a passed socket that is not a listener
// without a word, where PassedSockets refuses the start naming the fd
// (TestPassedSocketsRefused).
package handover

import (
	"bufio"
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
)

// handoverEnv names the variable that marks a process started by a
// graceful restart; its value is the fd of the channel to the old
// process. protoEnv names the protocol the old process speaks.
const (
	handoverEnv = "POSTERN_HANDOVER"
	protoEnv    = "POSTERN_HANDOVER_PROTOCOL"
	proto       = "2"
)

// The lines of the handover protocol.
const (
	msgReady    = "ready"    // new, to an older old process
	msgReady2   = "ready 2"  // new: loaded; "serving" follows
	msgReleased = "released" // old: the spool is closed
	msgServing  = "serving"  // new: the spool is open and the sockets accepted on
	msgFailed   = "failed "  // new: it failed, and why (the rest of the line)
)

// maxFailed bounds the error text a new process sends with "failed".
const maxFailed = 2000

// The time the new process has for each step.
const (
	// ReadyTimeout is the new process's time to load (step 2).
	ReadyTimeout = time.Minute
	// ServingTimeout is its time to open the spool and serve (step 4).
	ServingTimeout = 2 * time.Minute
	// SpoolTimeout is its time to get the spool from an older old
	// process, which does not say when it released it (RetryOpen).
	SpoolTimeout = 2 * time.Minute
)

// Restart is a graceful restart in progress, seen from the old process:
// the new process it started, the channel to it, and the duplicates of
// the sockets it was given. Its methods are called in the order of the
// sequence, from one goroutine.
type Restart struct {
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

// Start starts the new process with socks and returns once it is
// running; WaitReady then waits for it to load. On an error no process
// was started. The new process is the binary at os.Executable() with
// os.Args, this process's environment and its stdin, stdout and stderr.
//
// It uses syscall.ForkExec with the sockets' raw fds: os/exec would call
// (*os.File).Fd on each, which puts the socket (the open file description
// this process's listener shares) into blocking mode, and a blocking
// accept is not woken when the listener is closed.
func Start(log *slog.Logger, socks *Sockets) (*Restart, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("handover: %w", err)
	}
	r := &Restart{lines: make(chan string, 4), exited: make(chan struct{})}
	ok := false
	defer func() {
		if !ok {
			r.Close()
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
		protoEnv+"="+proto)
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

// Pid returns the new process's pid.
func (r *Restart) Pid() int { return r.pid }

// Confirms reports whether the new process says when it serves: false
// for an older version, which says only "ready". Valid after WaitReady.
func (r *Restart) Confirms() bool { return r.proto2 }

// watch reaps the new process proc when it exits and reads its lines.
func (r *Restart) watch(proc *os.Process) {
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
// closed its end (exited, usually), said it failed, or timeout passed.
func (r *Restart) next(timeout time.Duration) (string, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case line, ok := <-r.lines:
		if !ok {
			return "", r.exitError()
		}
		if why, failed := strings.CutPrefix(line, msgFailed); failed {
			return "", fmt.Errorf("it failed: %s", why)
		}
		return line, nil
	case <-t.C:
		return "", fmt.Errorf("no answer within %v", timeout)
	}
}

// exitError describes the new process's end, after it closed its end of
// the channel.
func (r *Restart) exitError() error {
	select {
	case <-r.exited:
		return fmt.Errorf("it exited (%s)", r.status)
	case <-time.After(time.Second):
		return errors.New("it closed the handover channel")
	}
}

// WaitReady waits up to timeout (ReadyTimeout in production) until the
// new process has loaded. On an error the new process is gone, and this
// one goes on serving.
func (r *Restart) WaitReady(timeout time.Duration) error {
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
	r.Close()
	return fmt.Errorf("handover: new process (pid %d) not ready: %w", r.pid, err)
}

// Release tells the new process that the spool is closed.
func (r *Restart) Release() error {
	if !r.proto2 {
		return nil // it retries opening the spool by itself
	}
	r.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := io.WriteString(r.conn, msgReleased+"\n")
	return err
}

// WaitServing waits up to timeout (ServingTimeout in production) until
// the new process serves. On an error the new process is gone: it
// exited, or it was killed at timeout.
func (r *Restart) WaitServing(timeout time.Duration) error {
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
func (r *Restart) abort() {
	r.proc.Kill()
	<-r.exited
	r.conn.Close()
}

// Sockets returns listeners on the sockets kept, by name, to serve on
// again after the new process failed, and closes the duplicates.
func (r *Restart) Sockets() (*Sockets, error) {
	defer r.Close()
	s := &Sockets{}
	for i, f := range r.kept {
		l, err := net.FileListener(f)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("handover: socket %s: %w", r.names[i], err)
		}
		s.Add(r.names[i], l)
	}
	return s, nil
}

// Close closes the duplicates of the sockets kept for serving again.
func (r *Restart) Close() {
	for _, f := range r.kept {
		f.Close()
	}
	r.kept = nil
}
