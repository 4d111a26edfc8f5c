package server

// postern restart, the server side: a graceful restart (as SIGUSR2)
// asked over the admin socket goes to the loop that handles the signals
// (serveBase.serveUntil), which answers once the new process is ready or
// has failed. The command (cmd/postern) then waits until the new process
// answers on the admin socket.

import (
	"context"
	"errors"
	"os"
	"syscall"
	"time"
)

// restartRequest is a graceful restart asked through the admin API; its
// outcome goes to done: the new process's pid once it is ready, or why
// it failed.
type restartRequest struct{ done chan<- restartOutcome }

type restartOutcome struct {
	pid int
	err error
}

// reply sends the outcome, if r is a request (nil for SIGUSR2).
func (r *restartRequest) reply(pid int, err error) {
	if r != nil {
		r.done <- restartOutcome{pid, err}
	}
}

// nextSignal waits for the next signal, a restart request that stands
// for SIGUSR2, or the end of Run's context, which stands for SIGTERM.
func (b *serveBase) nextSignal(sigs <-chan os.Signal) (os.Signal, *restartRequest) {
	select {
	case sig := <-sigs:
		return sig, nil
	case req := <-b.restarts:
		return syscall.SIGUSR2, &req
	case <-b.stop:
		return syscall.SIGTERM, nil
	}
}

// restartBusy bounds the wait for the signal loop to take a restart
// request: it takes none while a restart is under way.
const restartBusy = 5 * time.Second

// requestRestart asks the signal loop for a graceful restart (POST
// /restart) and returns the new process's pid once it is ready.
func (b *serveBase) requestRestart(ctx context.Context) (int, error) {
	done := make(chan restartOutcome, 1)
	select {
	case b.restarts <- restartRequest{done}:
	case <-time.After(restartBusy):
		return 0, errors.New("a graceful restart is under way already")
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	select {
	case o := <-done:
		return o.pid, o.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}
