package sasl

import "fmt"

// oneMessage is where the exchange of a mechanism whose client sends a
// single message stands (PLAIN, EXTERNAL, OAUTHBEARER, XOAUTH2): the
// message comes as the initial response or after an empty challenge.
// The zero value is the start.
type oneMessage int

const (
	oneStart     oneMessage = iota // nothing received
	oneChallenge                   // empty challenge sent
	oneFinished                    // the message received, or the exchange failed
)

// take reads response for mechanism mech. It reports proceed when
// response is the client's message (the exchange is then finished);
// otherwise the caller's Next returns challenge, not done, and err.
func (st *oneMessage) take(mech string, response []byte) (proceed bool, challenge []byte, err error) {
	switch *st {
	case oneStart:
		if response == nil {
			// RFC 4422 §3.3 and §5 (2b): no initial response, so the
			// server sends an empty challenge and waits for the message.
			*st = oneChallenge
			return false, []byte{}, nil
		}
	case oneChallenge:
		if response == nil {
			*st = oneFinished
			return false, nil, fmt.Errorf("sasl: %s: no response to the empty challenge: %w", mech, ErrMalformed)
		}
	default:
		return false, nil, fmt.Errorf("sasl: %s: exchange already finished: %w", mech, ErrMalformed)
	}
	*st = oneFinished
	return true, nil, nil
}
