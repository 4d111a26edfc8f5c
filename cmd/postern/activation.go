package main

// systemd socket activation (sd_listen_fds(3)): systemd binds the ports
// (contrib/postern.socket) and passes the listening sockets from fd 3
// on, with LISTEN_PID (our pid), LISTEN_FDS (how many) and
// LISTEN_FDNAMES (their FileDescriptorName=, colon-separated). A socket
// named like a [[listener]] (or "http", "admin", "acme-http-01",
// "acme-tls-alpn-01") serves that listener; a socket
// without a known name serves the listener on its port.

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"

	"postern/internal/config"
)

// listenFDsStart is the first fd systemd passes (SD_LISTEN_FDS_START).
const listenFDsStart = 3

// activationListeners returns the sockets systemd passed, or none when
// LISTEN_PID is not this process. It unsets the LISTEN_* variables so
// that no child takes them for its own.
func activationListeners(cfg *config.Config, log *slog.Logger) (*preBound, error) {
	p := &preBound{named: map[string]net.Listener{}}
	pid, nfds, names := os.Getenv("LISTEN_PID"), os.Getenv("LISTEN_FDS"), os.Getenv("LISTEN_FDNAMES")
	handover := os.Getenv(handoverEnv) != "" // started by a graceful restart (handover.go): no LISTEN_PID
	os.Unsetenv("LISTEN_PID")
	os.Unsetenv("LISTEN_FDS")
	os.Unsetenv("LISTEN_FDNAMES")
	os.Unsetenv(handoverEnv)
	if (pid == "" && !handover) || nfds == "" {
		return p, nil
	}
	if !handover && pid != strconv.Itoa(os.Getpid()) {
		return p, nil // meant for another process
	}
	n, err := strconv.Atoi(nfds)
	if err != nil || n < 0 || n > 64 {
		return nil, fmt.Errorf("serve: socket activation: bad LISTEN_FDS %q", nfds)
	}
	var nameList []string
	if names != "" {
		nameList = strings.Split(names, ":")
	}
	known := map[string]bool{}
	for name := range extraListeners(cfg) {
		known[name] = true
	}
	for _, lc := range cfg.Listeners {
		known[lc.Name] = true
	}
	for i := range n {
		fd := listenFDsStart + i
		syscall.CloseOnExec(fd)
		name := ""
		if i < len(nameList) {
			name = nameList[i]
		}
		f := os.NewFile(uintptr(fd), "listen-fd-"+name)
		l, err := net.FileListener(f)
		f.Close() // FileListener holds its own copy
		if err != nil {
			p.closeAll()
			return nil, fmt.Errorf("serve: socket activation: fd %d (%q): %w", fd, name, err)
		}
		switch {
		case known[name] && p.named[name] == nil:
			p.named[name] = l
		default:
			p.unnamed = append(p.unnamed, l)
		}
		log.Info("socket from systemd", "fd", fd, "name", name, "address", l.Addr().String())
	}
	return p, nil
}
