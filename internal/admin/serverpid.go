package admin

import (
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"
)

// ServerPID returns the process id of the server that listens on the
// admin socket at path (from the socket's peer credentials), so that a
// second server on the same data directory can name the first. It
// fails wrapping ErrNotRunning when nothing listens there; the id is 0
// where the system does not tell it.
func ServerPID(path string) (int, error) {
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return 0, fmt.Errorf("admin: %w: %w", ErrNotRunning, err)
		}
		return 0, fmt.Errorf("admin: %w", err)
	}
	defer c.Close()
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return 0, nil
	}
	return peerPID(uc), nil
}
