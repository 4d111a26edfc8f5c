package admin

// The process and graceful restart API (`postern restart`):
//
//	GET  /process   the process that answers: {"pid": 1234, "version": "0.9.0 (25e3e00a1b2c)", "started": "..."}
//	POST /restart   start a graceful restart, as SIGUSR2 does, and answer once the new
//	                process is ready to take over: {"pid": 1240} (200); or why it
//	                failed, the old process serving on: {"error": "..."} (500)
//
// After a 200 the old process hands over: it stops accepting, lets its
// sessions finish and exits, and the new one serves (the admin socket
// too). A client learns that the restart is done when GET /process
// answers with the new pid; if the new process dies first, the old one
// serves again.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"syscall"
	"time"
)

// Process is the server process that answers on the admin socket.
type Process struct {
	// PID is its process id.
	PID int `json:"pid"`
	// Version is its version (Server.Version).
	Version string `json:"version"`
	// Started is when its admin API was set up.
	Started time.Time `json:"started"`
}

// restartTimeout bounds POST /restart: the new process's time to load
// (handover.ReadyTimeout, one minute) and a margin.
const restartTimeout = 90 * time.Second

// restartRoutes adds the process and restart API to mux.
func (s *Server) restartRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /process", s.process)
	mux.HandleFunc("POST /restart", s.restart)
}

func (s *Server) process(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, Process{PID: os.Getpid(), Version: s.Version, Started: s.started})
}

func (s *Server) restart(w http.ResponseWriter, r *http.Request) {
	if s.Restart == nil {
		writeJSON(w, http.StatusServiceUnavailable, errorBody{"graceful restart is not available on this server"})
		return
	}
	// The new process may take longer to load than the server's write
	// timeout allows an answer.
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(restartTimeout + 10*time.Second))
	s.log.Info("admin: graceful restart")
	pid, err := s.Restart(r.Context())
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, errorBody{err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, struct {
		PID int `json:"pid"`
	}{pid})
}

// Process returns the server process that answers on the socket.
func (c *Client) Process(ctx context.Context) (Process, error) {
	var p Process
	if err := c.do(ctx, http.MethodGet, "/process", &p); err != nil {
		return Process{}, fmt.Errorf("admin: process: %w", err)
	}
	return p, nil
}

// Restart starts a graceful restart and returns the new process's pid
// once it is ready to take over; the error says why it failed, and the
// old process then serves on.
func (c *Client) Restart(ctx context.Context) (int, error) {
	var out struct {
		PID int `json:"pid"`
	}
	if err := c.doTimeout(ctx, http.MethodPost, "/restart", &out, restartTimeout); err != nil {
		return 0, fmt.Errorf("admin: restart: %w", err)
	}
	return out.PID, nil
}

// ErrExited is the error of AwaitServing when the process it waits for
// has exited.
var ErrExited = errors.New("admin: the process exited before it served")

// AwaitServing waits until the process pid answers on the socket, as it
// does once it serves after a graceful restart (Restart's pid). It fails
// with ErrExited when pid has exited first (the old process then serves
// again), or after limit.
func (c *Client) AwaitServing(ctx context.Context, pid int, limit time.Duration) (Process, error) {
	deadline := time.Now().Add(limit)
	for {
		p, err := c.Process(ctx)
		if err == nil && p.PID == pid {
			return p, nil
		}
		if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) { // EPERM: another user's
			return Process{}, fmt.Errorf("admin: pid %d: %w", pid, ErrExited)
		}
		if time.Now().After(deadline) {
			return Process{}, fmt.Errorf("admin: pid %d does not serve after %v", pid, limit)
		}
		select {
		case <-ctx.Done():
			return Process{}, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
