package admin

import (
	"net/url"
	"testing"

	"postern/internal/spool"
)

// FuzzFilter: any filter, as it comes in a URL query or a selection,
// is refused or compiled without a panic; one that compiles survives
// the trip through the URL query, and matching with it never panics.
func FuzzFilter(f *testing.F) {
	f.Add("alice@example.com", "bob@a.example", "a.example", "deferred", "carl@b.example")
	f.Add("<>", "", "", "active", "x@y")
	f.Add("evil.example", "", "xn--bcher-kva.example", "held", "x@Bücher.example")
	f.Add("@a", "a@", "a..b", "stuck", "@")
	f.Fuzz(func(t *testing.T, from, to, domain, state, rcpt string) {
		flt := Filter{From: from, To: to, Domain: domain, State: state}
		m, err := flt.compile()
		if err != nil {
			return
		}
		q, err := url.ParseQuery(flt.values().Encode())
		if err != nil || filterOf(q) != flt {
			t.Fatalf("%+v through a URL query: %+v, %v", flt, filterOf(q), err)
		}
		m.sender(rcpt)
		m.recipient(rcpt, rcptState(spool.RecipientState{Status: spool.StatusDeferred}, false))
		m.messages([]Message{{From: rcpt, Recipients: []Recipient{{Addr: rcpt, Status: state}}}})
	})
}
