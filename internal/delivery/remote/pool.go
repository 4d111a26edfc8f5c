package remote

import (
	"context"
	"sync"
	"time"
)

// PoolOptions bounds the pool of open sessions. Every value means what
// it says, 0 included: 0 keeps no session idle, or sets no cap, never a
// default (Postern's configuration resolves the defaults, in
// internal/config).
type PoolOptions struct {
	// MaxIdlePerHost is how many idle sessions are kept per destination
	// for reuse; 0 keeps none.
	MaxIdlePerHost int
	// IdleTimeout is how long an idle session is kept before QUIT.
	IdleTimeout time.Duration
	// MaxMessagesPerConn is how many transactions one session carries
	// before QUIT; 0 is no cap.
	MaxMessagesPerConn int
	// MaxConnsPerHost caps the open sessions (busy and idle) per
	// destination; a delivery waits for a free one; 0 is no cap.
	MaxConnsPerHost int
}

// poolKey identifies the sessions that are interchangeable: the same
// host name (which the TLS verification was for), address and TLS mode.
type poolKey struct {
	host string
	addr string // "ip:port"
	mode string // policy mode, or "smarthost"
}

// idleConn is a session waiting in the pool, with the timer that closes
// it (stop stops that timer).
type idleConn struct {
	c    *conn
	stop func() bool
}

// hostPool holds the sessions of one poolKey.
type hostPool struct {
	slots chan struct{} // one token per open session; nil: no cap
	avail chan struct{} // signalled when a session is put back idle
	idle  []*idleConn   // most recently used last
}

// pool keeps open sessions per destination. Its methods are safe for
// concurrent use.
type pool struct {
	opts      PoolOptions
	afterFunc func(d time.Duration, f func()) (stop func() bool)
	mu        sync.Mutex
	hosts     map[poolKey]*hostPool
	closed    bool
}

// newPool returns a pool whose idle timers afterFunc arms (nil:
// time.AfterFunc).
func newPool(o PoolOptions, afterFunc func(time.Duration, func()) func() bool) *pool {
	if afterFunc == nil {
		afterFunc = func(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop }
	}
	return &pool{opts: o, afterFunc: afterFunc, hosts: map[poolKey]*hostPool{}}
}

// host returns the hostPool for k, creating it. p.mu must be held.
func (p *pool) host(k poolKey) *hostPool {
	hp := p.hosts[k]
	if hp == nil {
		hp = &hostPool{avail: make(chan struct{}, 1)}
		if p.opts.MaxConnsPerHost > 0 {
			hp.slots = make(chan struct{}, p.opts.MaxConnsPerHost)
		}
		p.hosts[k] = hp
	}
	return hp
}

// get returns an idle session for k (hit), or reserves a slot for a new
// one (c nil: the caller dials and must call release if the dial fails).
// It waits while MaxConnsPerHost sessions are open, until ctx is done.
func (p *pool) get(ctx context.Context, k poolKey) (*conn, error) {
	for {
		p.mu.Lock()
		hp := p.host(k)
		var ic *idleConn
		for len(hp.idle) > 0 && ic == nil {
			ic = hp.idle[len(hp.idle)-1]
			hp.idle = hp.idle[:len(hp.idle)-1]
			if !ic.stop() {
				ic = nil // its idle timer is closing it
			}
		}
		p.mu.Unlock()
		if ic != nil {
			return ic.c, nil
		}
		if hp.slots == nil {
			return nil, nil
		}
		select {
		case hp.slots <- struct{}{}:
			return nil, nil
		case <-hp.avail:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// release frees the slot of a session that is gone (closed or never
// dialed).
func (p *pool) release(k poolKey) {
	p.mu.Lock()
	hp := p.host(k)
	p.mu.Unlock()
	if hp.slots != nil {
		<-hp.slots
	}
}

// discard closes c without QUIT and frees its slot.
func (p *pool) discard(c *conn) {
	c.Close()
	p.release(c.key)
}

// put returns a session after use: kept idle when healthy and below the
// caps, otherwise ended with QUIT (or closed, when broken or its last use
// was canceled: its state is unknown).
func (p *pool) put(c *conn) {
	if c.Broken() || c.Canceled() {
		p.discard(c)
		return
	}
	p.mu.Lock()
	hp := p.host(c.key)
	full := p.opts.MaxMessagesPerConn > 0 && c.msgs >= p.opts.MaxMessagesPerConn
	if p.closed || full || len(hp.idle) >= p.opts.MaxIdlePerHost {
		p.mu.Unlock()
		c.quit()
		p.release(c.key)
		return
	}
	ic := &idleConn{c: c}
	ic.stop = p.afterFunc(p.opts.IdleTimeout, func() { p.expire(ic) })
	hp.idle = append(hp.idle, ic)
	p.mu.Unlock()
	select {
	case hp.avail <- struct{}{}:
	default:
	}
}

// expire ends an idle session whose idle timeout passed.
func (p *pool) expire(ic *idleConn) {
	p.mu.Lock()
	hp := p.host(ic.c.key)
	for i, x := range hp.idle {
		if x == ic {
			hp.idle = append(hp.idle[:i], hp.idle[i+1:]...)
			break
		}
	}
	p.mu.Unlock()
	ic.c.quit()
	p.release(ic.c.key)
}

// closeAll ends every idle session with QUIT; sessions in use are ended
// when they are put back.
func (p *pool) closeAll() {
	p.mu.Lock()
	p.closed = true
	var all []*idleConn
	for _, hp := range p.hosts {
		for _, ic := range hp.idle {
			if ic.stop() {
				all = append(all, ic)
			}
		}
		hp.idle = nil
	}
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, ic := range all {
		wg.Go(func() {
			ic.c.quit()
			p.release(ic.c.key)
		})
	}
	wg.Wait()
}
