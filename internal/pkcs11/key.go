package pkcs11

import (
	"crypto"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"postern/internal/metrics"
)

// logEvery is how often, at most, a failing key logs again.
const logEvery = 10 * time.Second

// Key is a private key in a token, a crypto.Signer for TLS certificates
// and DKIM. Each Sign waits at most the timeout: for a free slot among
// the token's operations in flight, then for the token's answer. A
// timeout, an error of the module or a panic in it is returned as an
// error, counted in postern_pkcs11_operations_total by result ("ok",
// "error", "timeout", "busy"), and logged at ERROR level: at once, then
// at most every 10 seconds while the key keeps failing (with the count
// of failures in between), and at INFO level when it answers again. It
// is safe for concurrent use.
type Key struct {
	signer  crypto.Signer
	info    KeyInfo
	timeout time.Duration
	slots   chan struct{} // the token's operations in flight
	log     *slog.Logger
	now     func() time.Time
	onFail  func() // tells the token it failed (it is reopened at the next load)
	state   *failState
}

// failState is what the log rate limit remembers about a key.
type failState struct {
	mu         sync.Mutex
	failing    bool
	lastLog    time.Time
	suppressed int
}

// keyOptions are what newKey needs besides the signer.
type keyOptions struct {
	info   KeyInfo
	slots  chan struct{}
	onFail func()
	opts   Options
}

// newKey wraps signer, a key in a token.
func newKey(signer crypto.Signer, o keyOptions) *Key {
	o.opts.defaults()
	if o.slots == nil {
		o.slots = make(chan struct{}, o.opts.MaxInFlight)
	}
	if o.onFail == nil {
		o.onFail = func() {}
	}
	return &Key{signer: signer, info: o.info, timeout: o.opts.Timeout, slots: o.slots,
		log: o.opts.Logger, now: o.opts.Now, onFail: o.onFail, state: &failState{}}
}

// Public returns the public key, as the token holds it.
func (k *Key) Public() crypto.PublicKey { return k.signer.Public() }

// Info describes the key and its token.
func (k *Key) Info() KeyInfo { return k.info }

// String returns the key's URI (without PIN file or module).
func (k *Key) String() string { return k.info.URI }

// errBusy is the cause when every slot stayed taken for the timeout.
var errBusy = errors.New("the token's operations in flight stayed at the limit: it does not answer")

// Sign signs digest with the key in the token (crypto.Signer), within
// the timeout.
func (k *Key) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	timer := time.NewTimer(k.timeout)
	defer timer.Stop()
	select {
	case k.slots <- struct{}{}:
	case <-timer.C:
		return nil, k.failed("busy", errBusy)
	}
	type result struct {
		sig []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		// The slot is given back only when the module returns: a token
		// that hangs keeps at most cap(slots) threads.
		defer func() { <-k.slots }()
		defer func() {
			if p := recover(); p != nil {
				done <- result{err: fmt.Errorf("the PKCS#11 module panicked: %v", p)}
			}
		}()
		sig, err := k.signer.Sign(rand, digest, opts)
		done <- result{sig, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, k.failed("error", r.err)
		}
		k.succeeded()
		return r.sig, nil
	case <-timer.C:
		return nil, k.failed("timeout", fmt.Errorf("no answer from the token within %s", k.timeout))
	}
}

// failed counts, logs and returns a failed operation.
func (k *Key) failed(result string, err error) error {
	metrics.PKCS11Operations.WithLabelValues(k.info.URI, result).Inc()
	k.onFail()
	st := k.state
	st.mu.Lock()
	now := k.now()
	if !st.failing || now.Sub(st.lastLog) >= logEvery {
		k.log.Error("PKCS#11 key operation failed: TLS handshakes and DKIM signatures with this key fail until the token answers",
			"key", k.info.URI, "result", result, "err", err, "failures_not_logged", st.suppressed,
			"fix", "check the token and its module; postern reload reopens the token")
		st.lastLog, st.suppressed = now, 0
	} else {
		st.suppressed++
	}
	st.failing = true
	st.mu.Unlock()
	return fmt.Errorf("pkcs11: %s: sign: %w", k.info.URI, err)
}

// succeeded counts a signature and logs a recovery.
func (k *Key) succeeded() {
	metrics.PKCS11Operations.WithLabelValues(k.info.URI, "ok").Inc()
	st := k.state
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.failing {
		k.log.Info("PKCS#11 key answers again", "key", k.info.URI, "failures_not_logged", st.suppressed)
		st.failing, st.suppressed = false, 0
	}
}
