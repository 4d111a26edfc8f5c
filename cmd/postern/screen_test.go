package main

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"postern/internal/admission"
)

func TestScreenPassCache(t *testing.T) {
	p := screenPass{admission.NewMemoryStore()}
	ctx := context.Background()
	a := netip.MustParseAddr("::ffff:192.0.2.1")
	if ok, err := p.Passed(ctx, a, cliNow); ok || err != nil {
		t.Fatalf("Passed before Pass = %v, %v", ok, err)
	}
	if err := p.Pass(ctx, a, cliNow); err != nil {
		t.Fatal(err)
	}
	if ok, _ := p.Passed(ctx, netip.MustParseAddr("192.0.2.1"), cliNow.Add(23*time.Hour)); !ok {
		t.Error("forgotten within a day")
	}
	if ok, _ := p.Passed(ctx, a, cliNow.Add(screenPassTTL)); ok {
		t.Error("remembered past screenPassTTL")
	}
}
