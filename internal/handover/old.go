package handover

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"syscall"
	"time"
)

// Old is the old process's side of a graceful restart once the new
// process is ready (steps 3 to 5 of the sequence): it drains, stops,
// releases the spool and waits for the new process to serve. Set its
// fields, then call HandOver.
type Old struct {
	// Log receives the progress of the hand-over.
	Log *slog.Logger
	// Drain stops accepting and lets the sessions go on as usual until
	// they have all ended or ctx is done; it reports whether they all
	// ended. ctx ends after DrainTimeout, or at once on SIGTERM.
	Drain func(ctx context.Context) bool
	// DrainTimeout bounds the drain (limits.restart_drain_timeout).
	DrainTimeout time.Duration
	// Stop shuts down what still runs, as on SIGTERM, and closes the
	// spool: after it returns, the new process may open the spool.
	Stop func()
	// Signals are the process's signals while the hand-over lasts:
	// SIGHUP calls Reload, SIGUSR2 is ignored, and any other (SIGTERM,
	// SIGINT) calls Stopping, ends the drain at once and makes this
	// process exit whatever the new one does.
	Signals <-chan os.Signal
	// Reload reloads what SIGHUP reloads; nil ignores SIGHUP.
	Reload func()
	// Stopping is called when a stop is asked meanwhile (to tell the
	// service manager); it may be nil.
	Stopping func()
}

// HandOver hands the service over to the new process r, which said it
// is ready. It returns nil, nil once the new process serves (or is an
// older version, which cannot say), or after SIGTERM or SIGINT
// meanwhile: this process is then to exit. Otherwise it returns the
// sockets kept, to serve on again, and why the new process failed.
func (o *Old) HandOver(r *Restart) (*Sockets, error) {
	log := o.Log
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
			case sig := <-o.Signals:
				switch sig {
				case syscall.SIGHUP:
					if o.Reload != nil {
						o.Reload()
					}
				case syscall.SIGUSR2:
					log.Warn("graceful restart in progress: SIGUSR2 ignored")
				default:
					log.Info("graceful restart: stop asked: shutting down the sessions now, no coming back", "signal", sig.String())
					stopAsked.Store(true)
					if o.Stopping != nil {
						o.Stopping()
					}
					cancel()
				}
			}
		}
	}()
	defer func() { close(quit); <-watched }()

	log.Info("graceful restart: draining: the sessions go on", "for", o.DrainTimeout)
	dctx, dcancel := context.WithTimeout(ctx, o.DrainTimeout)
	ended := o.Drain(dctx)
	dcancel()
	switch {
	case ended:
		log.Info("graceful restart: every session ended")
	case ctx.Err() == nil:
		log.Info("graceful restart: limits.restart_drain_timeout passed: shutting down the sessions left")
	}
	o.Stop()
	if err := r.Release(); err != nil {
		log.Warn("graceful restart: the new process was not told the spool is released", "err", err)
	}
	log.Info("graceful restart: spool released; waiting for the new process to serve", "pid", r.pid)
	err := r.WaitServing(ServingTimeout)
	switch {
	case err == nil:
		r.Close()
		if !r.proto2 {
			log.Warn("graceful restart: the new process is an older version, which does not say when it serves: handed over without confirmation", "pid", r.pid)
		} else {
			log.Info("graceful restart: the new process serves", "pid", r.pid)
		}
		return nil, nil
	case stopAsked.Load():
		r.Close()
		log.Error("graceful restart failed; stopping, as asked", "err", err)
		return nil, nil
	}
	socks, lerr := r.Sockets()
	if lerr != nil {
		return nil, fmt.Errorf("graceful restart failed (%v), and the sockets kept cannot serve again: %w", err, lerr)
	}
	return socks, err
}
