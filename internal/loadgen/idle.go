package loadgen

import (
	"context"
	"sync"
	"time"
)

// IdleOptions describe an idle hold: Sessions sessions opened as Options
// describes (TLS and AUTH included), at most Dialers at a time.
type IdleOptions struct {
	Options
	Sessions int // sessions to open
	Dialers  int // concurrent session setups; default 64
}

// Idle is a set of open, idle sessions.
type Idle struct {
	conns      []*conn
	Opened     int           // sessions ready for MAIL
	Errors     int           // sessions that could not be set up
	FirstError string        // the first setup error
	Elapsed    time.Duration // time to open them all
	Setup      Percentiles
}

// OpenIdle opens o.Sessions sessions and leaves them idle; the caller
// holds them, then calls Check and Close.
func OpenIdle(ctx context.Context, o IdleOptions) (*Idle, error) {
	opts, err := o.Options.withDefaultsIdle()
	if err != nil {
		return nil, err
	}
	if o.Dialers <= 0 {
		o.Dialers = 64
	}
	id := &Idle{conns: make([]*conn, 0, o.Sessions)}
	var (
		mu  sync.Mutex
		set []time.Duration
		wg  sync.WaitGroup
	)
	jobs := make(chan struct{})
	start := time.Now()
	for range o.Dialers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				t0 := time.Now()
				k, err := dial(&opts)
				d := time.Since(t0)
				mu.Lock()
				if err != nil {
					id.Errors++
					if id.FirstError == "" {
						id.FirstError = err.Error()
					}
				} else {
					id.conns = append(id.conns, k)
					set = append(set, d)
				}
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < o.Sessions && ctx.Err() == nil; i++ {
		jobs <- struct{}{}
	}
	close(jobs)
	wg.Wait()
	id.Elapsed = time.Since(start)
	id.Opened = len(id.conns)
	id.Setup = percentiles(set)
	return id, nil
}

func (o Options) withDefaultsIdle() (Options, error) {
	if o.From == "" {
		o.From = "idle@loadgen.invalid"
	}
	if len(o.Rcpt) == 0 {
		o.Rcpt = []string{"idle@loadgen.invalid"}
	}
	if o.Messages <= 0 && o.Duration <= 0 {
		o.Messages = 1
	}
	return o.withDefaults()
}

// Check sends NOOP on every open session, at most dialers at a time, and
// returns how many answered 250 and the first error.
func (id *Idle) Check(dialers int) (alive int, firstErr error) {
	if dialers <= 0 {
		dialers = 64
	}
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	jobs := make(chan *conn)
	for range dialers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range jobs {
				_, err := k.cmd(250, "NOOP", "NOOP")
				mu.Lock()
				if err == nil {
					alive++
				} else if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}()
	}
	for _, k := range id.conns {
		jobs <- k
	}
	close(jobs)
	wg.Wait()
	return alive, firstErr
}

// Close ends every session with QUIT.
func (id *Idle) Close() {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for _, k := range id.conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			k.quit()
			<-sem
		}()
	}
	wg.Wait()
	id.conns = nil
}
