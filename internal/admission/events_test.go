package admission_test

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"postern/internal/admission"
	"postern/internal/admission/admissiontest"
)

// TestEngineObservers checks that OnBan and OnAlert are told each ban
// and alert the engine logs, with the same facts: an address banned
// (and, on its second strike, alerted as a repeat offender), a prefix
// banned, credential stuffing and distributed guessing.
func TestEngineObservers(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var bans []admission.BanEvent
	var alerts []admission.Alert
	et := newEngine(t, admission.NewMemoryStore(), admissiontest.Abuse(func(o *admission.AbuseOptions) {
		o.IPBanAfter, o.PrefixBanIPs, o.StuffingUsers, o.DistributedIPs, o.AlertStrikes = 2, 2, 2, 3, 2
		o.OnBan = func(b admission.BanEvent) { mu.Lock(); bans = append(bans, b); mu.Unlock() }
		o.OnAlert = func(a admission.Alert) { mu.Lock(); alerts = append(alerts, a); mu.Unlock() }
	}))
	now := e0
	et.fail("192.0.2.1", "alice", now)
	et.fail("192.0.2.1", "alice", now) // banned
	if len(bans) != 1 || bans[0].Scope != "ip" || bans[0].Ban.Prefix != netip.MustParsePrefix("192.0.2.1/32") ||
		bans[0].Ban.Strikes != 1 || !bans[0].Time.Equal(now) || bans[0].Ban.Reason == "" {
		t.Fatalf("bans = %+v", bans)
	}
	if len(alerts) != 0 {
		t.Fatalf("alerts after a first strike: %+v", alerts)
	}
	// A second address of the /24: its ban bans the prefix (an alert).
	et.fail("192.0.2.2", "bob", now)
	et.fail("192.0.2.2", "bob", now)
	if n := len(bans); n != 3 || bans[2].Scope != "prefix" || bans[2].Ban.Prefix.String() != "192.0.2.0/24" {
		t.Fatalf("bans = %+v", bans)
	}
	if len(alerts) != 1 || alerts[0].Kind != admission.AlertBruteforce || alerts[0].Subject() != "192.0.2.0/24" ||
		alerts[0].Until.IsZero() || alerts[0].Describe() == "" {
		t.Fatalf("alerts = %+v", alerts)
	}
	// Credential stuffing from one address.
	for i := range 2 {
		et.fail("198.51.100.7", fmt.Sprintf("u%d", i), now)
	}
	// Distributed guessing of one username from three networks.
	for _, a := range []string{"203.0.113.1", "203.0.114.1", "203.0.115.1"} {
		et.fail(a, "carol", now.Add(time.Second))
	}
	kinds := map[string]admission.Alert{}
	for _, a := range alerts {
		kinds[a.Kind] = a
	}
	if a := kinds[admission.AlertStuffing]; a.Subject() != "198.51.100.7" || a.Count != 2 || a.Describe() != "2 usernames tried within 10m0s" {
		t.Errorf("stuffing alert %+v (%q)", a, a.Describe())
	}
	if a := kinds[admission.AlertDistributed]; a.Subject() != "carol" || a.Count != 3 {
		t.Errorf("distributed alert %+v", a)
	}
	// The log says the same: one "auth ban" per address ban, one alert
	// line per alert.
	if n := et.log.count("auth ban"); n != 3 {
		t.Errorf("%d auth ban lines, want 3 (the address bans)", n)
	}
	if n := et.log.count("auth abuse alert"); n != len(alerts) {
		t.Errorf("%d alert lines, %d alerts told", n, len(alerts))
	}
}
