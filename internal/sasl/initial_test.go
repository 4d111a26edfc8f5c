package sasl

import (
	"errors"
	"testing"
)

// TestOneMessage: the single-message exchange that PLAIN, EXTERNAL,
// OAUTHBEARER and XOAUTH2 share answers no initial response with an
// empty challenge, takes the message once, and refuses a second nil
// and anything after the message.
func TestOneMessage(t *testing.T) {
	var st oneMessage
	if ok, ch, err := st.take("X", nil); ok || ch == nil || len(ch) != 0 || err != nil {
		t.Fatalf("no initial response: %v %q %v", ok, ch, err)
	}
	if ok, ch, err := st.take("X", []byte{}); !ok || ch != nil || err != nil {
		t.Fatalf("the message after the challenge: %v %q %v", ok, ch, err)
	}
	if ok, _, err := st.take("X", []byte("again")); ok || !errors.Is(err, ErrMalformed) {
		t.Errorf("after the message: %v %v", ok, err)
	}

	st = 0
	if ok, _, err := st.take("X", []byte("initial")); !ok || err != nil {
		t.Errorf("initial response: %v %v", ok, err)
	}

	st = 0
	st.take("X", nil)
	if ok, _, err := st.take("X", nil); ok || !errors.Is(err, ErrMalformed) || err.Error() != "sasl: X: no response to the empty challenge: "+ErrMalformed.Error() {
		t.Errorf("nil after the challenge: %v %v", ok, err)
	}
	if ok, _, err := st.take("X", []byte("late")); ok || !errors.Is(err, ErrMalformed) {
		t.Errorf("a message after the failed exchange: %v %v", ok, err)
	}
}
