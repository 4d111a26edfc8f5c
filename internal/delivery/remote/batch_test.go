package remote

import (
	"errors"
	"testing"

	"postern/internal/queue"
)

// TestOutcome: a delivered recipient has no error; a 5xx is permanent,
// a 4xx and a failure without a reply are retried; a reply becomes the
// Diagnostic-Code, and the session's details the relay of the log.
func TestOutcome(t *testing.T) {
	ss := Session{Addr: "192.0.2.1:25", TLSVersion: "TLS1.3", Verification: "dane", Reply: "250 2.0.0 Ok: queued as X", RemoteID: "X"}
	o := outcome(Result{Rcpt: "a@x.test", Delivered: true, NextHopDSN: true, Code: 250, Enhanced: "2.0.0", Text: "Ok", Host: "mx.x.test", Session: ss})
	if o.Err != nil || o.Rcpt != "a@x.test" || o.Status != "2.0.0" || o.RemoteMTA != "mx.x.test" || !o.NextHopDSN ||
		o.Diagnostic != "smtp; 250 2.0.0 Ok" || o.Relay.Addr != ss.Addr || o.Relay.TLSVerification != "dane" || o.Relay.RemoteID != "X" {
		t.Errorf("delivered: %+v", o)
	}
	o = outcome(Result{Rcpt: "b@x.test", Permanent: true, Code: 550, Enhanced: "5.1.1", Text: "User unknown", Host: "mx.x.test"})
	if !queue.IsPermanent(o.Err) || o.Err.Error() == "" || o.Diagnostic != "smtp; 550 5.1.1 User unknown" {
		t.Errorf("5xx: %+v", o)
	}
	o = outcome(Result{Rcpt: "c@x.test", Code: 451, Enhanced: "4.3.0", Text: "later", Host: "mx.x.test"})
	if o.Err == nil || queue.IsPermanent(o.Err) || o.Err.Error() != "mx.x.test: 451 4.3.0 later" {
		t.Errorf("4xx: %+v", o)
	}
	dial := errors.New("dial: refused")
	o = outcome(Result{Rcpt: "d@x.test", Enhanced: "4.4.1", Err: dial})
	if !errors.Is(o.Err, dial) || queue.IsPermanent(o.Err) || o.Diagnostic != "" || o.Status != "4.4.1" {
		t.Errorf("no reply: %+v", o)
	}
}
