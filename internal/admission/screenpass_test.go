package admission

import (
	"context"
	"net/netip"
	"testing"
	"time"
)

func TestScreenPasses(t *testing.T) {
	t.Parallel()
	p := ScreenPasses{NewMemoryStore()}
	ctx := context.Background()
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	a := netip.MustParseAddr("::ffff:192.0.2.1")
	if ok, err := p.Passed(ctx, a, now); ok || err != nil {
		t.Fatalf("Passed before Pass = %v, %v", ok, err)
	}
	if err := p.Pass(ctx, a, now); err != nil {
		t.Fatal(err)
	}
	if ok, _ := p.Passed(ctx, netip.MustParseAddr("192.0.2.1"), now.Add(23*time.Hour)); !ok {
		t.Error("forgotten within a day")
	}
	if ok, _ := p.Passed(ctx, a, now.Add(ScreenPassTTL)); ok {
		t.Error("remembered past ScreenPassTTL")
	}
}
