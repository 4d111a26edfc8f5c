package handover

// Passed sockets (sd_listen_fds(3)): systemd binds the ports
// (contrib/postern.socket) and passes the listening sockets from fd 3
// on, with LISTEN_PID (our pid), LISTEN_FDS (how many) and
// LISTEN_FDNAMES (their FileDescriptorName=, colon-separated). The old
// process of a graceful restart passes its sockets the same way, with
// POSTERN_HANDOVER in place of LISTEN_PID.

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// listenFDsStart is the first fd passed (SD_LISTEN_FDS_START).
const listenFDsStart = 3

// maxListenFDs bounds LISTEN_FDS: more is a mistake, not a service.
const maxListenFDs = 64

// A Socket is a listening socket passed to this process.
type Socket struct {
	// Name is the name it was passed under (LISTEN_FDNAMES); "" for
	// none.
	Name string
	// Listener is the socket.
	Listener net.Listener
}

// Passed are the listening sockets passed to this process when it
// started.
type Passed struct {
	// From says who passed them, for logs: "systemd" or "the old
	// process" (of a graceful restart); "" when none were.
	From string
	// Sockets are the sockets, in the order of their fds.
	Sockets []Socket
}

// PassedSockets takes the sockets passed to this process: by the old
// process of a graceful restart when child is not nil (FromEnv), else
// by systemd when LISTEN_PID is this process. It logs each socket
// taken ("socket from systemd" or "socket from the old process", with
// its fd, name and address), and unsets the LISTEN_* variables so that
// no child of this process takes them for its own. A malformed
// LISTEN_FDS, or a passed fd that is not a listening socket, is an
// error: the start fails naming it.
func PassedSockets(child *Child, log *slog.Logger) (Passed, error) {
	pid, nfds, names := os.Getenv("LISTEN_PID"), os.Getenv("LISTEN_FDS"), os.Getenv("LISTEN_FDNAMES")
	os.Unsetenv("LISTEN_PID")
	os.Unsetenv("LISTEN_FDS")
	os.Unsetenv("LISTEN_FDNAMES")
	from := "systemd"
	if child != nil {
		from = "the old process"
	}
	n, nameList, err := parseListenEnv(pid, nfds, names, child != nil, os.Getpid())
	if err != nil || n == 0 {
		return Passed{}, err
	}
	return takeSockets(listenFDsStart, n, nameList, from, log)
}

// parseListenEnv reads the LISTEN_* variables: how many sockets were
// passed to the process self, and their names. handover says the old
// process of a graceful restart passed them, which cannot set
// LISTEN_PID.
func parseListenEnv(pid, nfds, names string, handover bool, self int) (int, []string, error) {
	if (pid == "" && !handover) || nfds == "" {
		return 0, nil, nil
	}
	if !handover && pid != strconv.Itoa(self) {
		return 0, nil, nil // meant for another process
	}
	n, err := strconv.Atoi(nfds)
	if err != nil || n < 0 || n > maxListenFDs {
		return 0, nil, fmt.Errorf("handover: socket activation: bad LISTEN_FDS %q", nfds)
	}
	var nameList []string
	if names != "" {
		nameList = strings.Split(names, ":")
	}
	return n, nameList, nil
}

// takeSockets takes n listening sockets from fd first on.
func takeSockets(first, n int, names []string, from string, log *slog.Logger) (Passed, error) {
	p := Passed{From: from}
	for i := range n {
		fd := first + i
		syscall.CloseOnExec(fd)
		name := ""
		if i < len(names) {
			name = names[i]
		}
		f := os.NewFile(uintptr(fd), "listen-fd-"+name)
		l, err := net.FileListener(f)
		f.Close() // FileListener holds its own copy
		if err != nil {
			for _, s := range p.Sockets {
				s.Listener.Close()
			}
			return Passed{}, fmt.Errorf("handover: socket from %s: fd %d (%q): %w", from, fd, name, err)
		}
		p.Sockets = append(p.Sockets, Socket{Name: name, Listener: l})
		log.Info("socket from "+from, "fd", fd, "name", name, "address", l.Addr().String())
	}
	return p, nil
}
