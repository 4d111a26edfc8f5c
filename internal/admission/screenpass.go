package admission

import (
	"context"
	"net/netip"
	"time"
)

// ScreenPassTTL is how long a client that passed the port-25 screen
// skips it (postscreen's postscreen_greet_ttl is a day too).
const ScreenPassTTL = 24 * time.Hour

// ScreenPasses remembers the clients that passed the screen of mx
// listeners (smtpd.PassCache) in a Store, shared by the nodes with
// Redis: a counter per address whose window is ScreenPassTTL.
type ScreenPasses struct{ Store Store }

func screenPassKey(a netip.Addr) string { return "screen-pass:" + a.Unmap().String() }

// Passed reports whether a passed within ScreenPassTTL before now.
func (p ScreenPasses) Passed(ctx context.Context, a netip.Addr, now time.Time) (bool, error) {
	n, err := p.Store.Count(ctx, screenPassKey(a), now)
	return n > 0, err
}

// Pass records that a passed at now.
func (p ScreenPasses) Pass(ctx context.Context, a netip.Addr, now time.Time) error {
	_, err := p.Store.Incr(ctx, screenPassKey(a), 1, now, ScreenPassTTL)
	return err
}
