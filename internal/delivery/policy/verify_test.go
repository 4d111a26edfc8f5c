package policy

import (
	"testing"
	"time"
)

// TestWebPKIVerifiedCache: a chain accepted for one name is remembered
// for that name only, while the chain is valid by the Engine's clock.
func TestWebPKIVerifiedCache(t *testing.T) {
	t.Parallel()
	e := newEnv(t, stsZone(), nil)
	cs := handshake(t, e.sts.ca.leaf(t, []string{"mx.sts.test"}, leafOpts{}))
	good, other := e.eng.webPKIVerifier("mx.sts.test"), e.eng.webPKIVerifier("other.sts.test")
	for range 2 {
		if err := good(cs); err != nil {
			t.Fatalf("valid chain refused: %v", err)
		}
		if err := other(cs); err == nil {
			t.Fatal("a chain accepted for mx.sts.test was accepted for other.sts.test")
		}
	}
	if len(e.eng.verified.m) != 1 {
		t.Errorf("%d entries, want 1 (refusals are not remembered)", len(e.eng.verified.m))
	}
	// The leaf is valid for 24 hours (certs_test.go): past that, the
	// remembered acceptance no longer counts.
	e.clock.Advance(25 * time.Hour)
	if err := good(cs); err == nil {
		t.Error("an expired chain accepted from the cache")
	}
}
