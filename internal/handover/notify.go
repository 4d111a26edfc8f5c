package handover

// systemd's service notifications (sd_notify(3)), without a dependency
// (see the package documentation for why): under Type=notify systemd
// sets NOTIFY_SOCKET to a unix datagram socket, a path or an abstract
// name written with a leading '@', and reads newline-separated
// VAR=value assignments from it. A server sends
//
//   - READY=1 with MAINPID= its pid when it serves: at start, in the new
//     process of a graceful restart (systemd then follows that process;
//     it takes the message only with NotifyAccess=all), and in an old
//     process that serves again after a failed one;
//   - RELOADING=1, then READY=1, around a reload (SIGHUP) and a graceful
//     restart (SIGUSR2);
//   - STOPPING=1 when it shuts down.

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// BarrierTimeout bounds how long a server waits for systemd to confirm
// it read the notifications sent so far (Notifier.Barrier).
const BarrierTimeout = 5 * time.Second

// notifySendTimeout bounds one notification: a manager that reads
// nothing must not hold the server up.
const notifySendTimeout = 2 * time.Second

// Notifier sends service state to the service manager. Its zero value,
// a nil one, and one made without NOTIFY_SOCKET send nothing. It is safe
// for concurrent use.
type Notifier struct {
	addr string // NOTIFY_SOCKET; "" for none
	log  *slog.Logger
}

// NewNotifier returns a Notifier for $NOTIFY_SOCKET, which log tells
// about notifications lost. The variable stays set: the new process of
// a graceful restart notifies too.
func NewNotifier(log *slog.Logger) *Notifier {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr != "" && addr[0] != '/' && addr[0] != '@' {
		log.Warn("NOTIFY_SOCKET is neither a path nor an abstract socket name: systemd is not notified", "address", addr)
		addr = ""
	}
	return &Notifier{addr: addr, log: log}
}

// Send sends state, with the open files in rights when not nil
// (syscall.UnixRights). It fails after 2 s when the manager reads
// nothing.
func (n *Notifier) Send(state string, rights []byte) error {
	if n == nil || n.addr == "" {
		return nil
	}
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer syscall.Close(fd)
	tv := syscall.NsecToTimeval(int64(notifySendTimeout))
	syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_SNDTIMEO, &tv)
	// Go reads a leading '@' as Linux's abstract namespace.
	if err := syscall.Sendmsg(fd, []byte(state), rights, &syscall.SockaddrUnix{Name: n.addr}, 0); err != nil {
		return fmt.Errorf("sd_notify: send to %s: %w", n.addr, err)
	}
	return nil
}

// notify sends state and logs a failure: a notification lost is no
// reason to stop serving.
func (n *Notifier) notify(state string) {
	if err := n.Send(state, nil); err != nil {
		n.log.Warn("service manager not notified", "state", state, "err", err)
	}
}

// Ready says that this process serves, and is the service's main
// process.
func (n *Notifier) Ready() {
	n.notify("READY=1\nMAINPID=" + strconv.Itoa(os.Getpid()) + "\nSTATUS=serving")
}

// Reloading says that a reload or a graceful restart began, with status
// for systemctl status; Ready (from this process or a new one) ends it.
func (n *Notifier) Reloading(status string) {
	var ts unix.Timespec
	state := "RELOADING=1\nSTATUS=" + status
	if unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) == nil {
		// systemd 253's Type=notify-reload wants to know when.
		state += "\nMONOTONIC_USEC=" + strconv.FormatInt(ts.Nano()/1000, 10)
	}
	n.notify(state)
}

// Stopping says that this process shuts down.
func (n *Notifier) Stopping() { n.notify("STOPPING=1\nSTATUS=shutting down") }

// Barrier waits until the service manager has read every notification
// sent before, for at most timeout (sd_notify_barrier(3)): it sends
// BARRIER=1 with the write end of a pipe, which the manager closes once
// it got there. It returns nil at once without NOTIFY_SOCKET.
func (n *Notifier) Barrier(timeout time.Duration) error {
	if n == nil || n.addr == "" {
		return nil
	}
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		return fmt.Errorf("sd_notify: barrier: %w", err)
	}
	r := os.NewFile(uintptr(p[0]), "sd-notify-barrier")
	defer r.Close()
	err := n.Send("BARRIER=1", syscall.UnixRights(p[1]))
	syscall.Close(p[1])
	if err != nil {
		return err
	}
	r.SetReadDeadline(time.Now().Add(timeout))
	if _, err := r.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		return fmt.Errorf("sd_notify: barrier: %w", cmp.Or(err, errors.New("unexpected data")))
	}
	return nil
}
