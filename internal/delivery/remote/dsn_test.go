package remote

import (
	"slices"
	"testing"

	"postern/internal/delivery/policy"
	"postern/internal/smtp"
)

// TestDSNPassedOn checks that the DSN parameters go to a next hop that
// offers DSN (RFC 3461 §5.2.1), xtext-encoded, and that the result says
// the next hop took them; to a next hop without DSN nothing is added,
// and the result says so (the queue then reports "relayed").
func TestDSNPassedOn(t *testing.T) {
	for _, offered := range []bool{true, false} {
		s := newFake(t, "127.0.0.2", func(s *fakeServer) {
			if offered {
				s.Ext = []string{"DSN"}
			}
		})
		f := newFixture(t, []policy.Host{mx("mx.example.test", policy.Opportunistic, s)}, s)
		msg := testMsg("b@example.test", "c@example.test", "d@example.test")
		msg.Ret, msg.EnvID = "HDRS", "QQ 31=4"
		msg.DSN = map[string]smtp.RcptDSN{
			"b@example.test": {Notify: smtp.NotifySuccess | smtp.NotifyFailure, ORcpt: "rfc822;old+b@example.test"},
			"c@example.test": {Notify: smtp.NotifyNever},
			"d@example.test": {ORcpt: "utf-8;jörg@example.test"},
		}
		res := f.one(t, msg)
		delivered(t, res)
		for _, r := range res {
			if r.NextHopDSN != offered {
				t.Errorf("offered %v: %s NextHopDSN %v", offered, r.Rcpt, r.NextHopDSN)
			}
		}
		_, _, _, msgs := s.stats()
		mail, rcpts := "MAIL FROM:<a@src.test>", []string{"TO:<b@example.test>", "TO:<c@example.test>", "TO:<d@example.test>"}
		if offered {
			mail += " RET=HDRS ENVID=QQ+2031+3D4"
			rcpts = []string{
				"TO:<b@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;old+2Bb@example.test",
				"TO:<c@example.test> NOTIFY=NEVER",
				`TO:<d@example.test> ORCPT=utf-8;j\x{F6}rg@example.test`,
			}
		}
		if msgs[0].Mail != mail || !slices.Equal(msgs[0].Rcpts, rcpts) {
			t.Errorf("offered %v: MAIL %q RCPT %q\nwant %q %q", offered, msgs[0].Mail, msgs[0].Rcpts, mail, rcpts)
		}
	}
}
