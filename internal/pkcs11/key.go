package pkcs11

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
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
// of failures in between), and at INFO level when it answers again.
// When its token has been closed and opened again (Tokens.Key after a
// failure, as on postern reload), the Key finds itself in the token
// anew at its next Sign, so that whoever holds it (the certificates,
// the DKIM signer) recovers too. It is safe for concurrent use.
type Key struct {
	info    KeyInfo
	pub     crypto.PublicKey // the public key when found; a found-again key must keep it
	cur     atomic.Pointer[binding]
	refind  func() (*binding, error) // nil: never found again
	refound sync.Mutex               // one refind at a time
	timeout time.Duration
	log     *slog.Logger
	now     func() time.Time
	state   *failState
	m       *Metrics // its Tokens'
}

// binding is a key as found in an open token.
type binding struct {
	signer crypto.Signer
	slots  chan struct{} // the token's operations in flight
	stale  func() bool   // the token was closed: find the key again
	failed func()        // tells the token it failed (it is reopened at the next Tokens.Key)
}

// failState is what the log rate limit remembers about a key.
type failState struct {
	mu         sync.Mutex
	failing    bool
	lastLog    time.Time
	suppressed int
}

// keyOptions are what newKey needs besides the binding.
type keyOptions struct {
	info   KeyInfo
	refind func() (*binding, error)
	opts   Options
}

// newKey returns the Key of b, a key found in a token.
func newKey(b *binding, o keyOptions) *Key {
	o.opts.defaults()
	if b.slots == nil {
		b.slots = make(chan struct{}, o.opts.MaxInFlight)
	}
	if b.stale == nil {
		b.stale = func() bool { return false }
	}
	if b.failed == nil {
		b.failed = func() {}
	}
	k := &Key{info: o.info, pub: b.signer.Public(), refind: o.refind, timeout: o.opts.Timeout,
		log: o.opts.Logger, now: o.opts.Now, state: &failState{}, m: o.opts.Metrics}
	k.cur.Store(b)
	return k
}

// Public returns the public key, as the token holds it.
func (k *Key) Public() crypto.PublicKey { return k.pub }

// Info describes the key and its token.
func (k *Key) Info() KeyInfo { return k.info }

// String returns the key's URI (without PIN file or module).
func (k *Key) String() string { return k.info.URI }

// binding returns where the key is now, finding it again in its token
// when the token was opened anew.
func (k *Key) binding() (*binding, error) {
	b := k.cur.Load()
	if !b.stale() || k.refind == nil {
		return b, nil
	}
	k.refound.Lock()
	defer k.refound.Unlock()
	if b = k.cur.Load(); !b.stale() {
		return b, nil // found meanwhile
	}
	nb, err := k.refind()
	if err != nil {
		return b, err
	}
	if p, ok := nb.signer.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !p.Equal(k.pub) {
		return b, errors.New("the token's key under this URI is another key now: postern reload loads it with its certificate")
	}
	k.cur.Store(nb)
	return nb, nil
}

// SelfTest signs a random SHA-256 digest in the token and verifies the
// signature with the public key, as `postern check` does: it proves the
// token answers, the login holds and the private key is the public
// key's.
func (k *Key) SelfTest() error {
	d := make([]byte, sha256.Size)
	rand.Read(d)
	sig, err := k.Sign(rand.Reader, d, crypto.SHA256)
	if err != nil {
		return err
	}
	switch pub := k.Public().(type) {
	case *ecdsa.PublicKey:
		if ecdsa.VerifyASN1(pub, d, sig) {
			return nil
		}
	case *rsa.PublicKey:
		if rsa.VerifyPKCS1v15(pub, crypto.SHA256, d, sig) == nil {
			return nil
		}
	default:
		return fmt.Errorf("pkcs11: %s: cannot verify a %T signature", k.info.URI, pub)
	}
	return fmt.Errorf("pkcs11: %s: the token's signature does not verify with its public key", k.info.URI)
}

// errBusy is the cause when every slot stayed taken for the timeout.
var errBusy = errors.New("the token's operations in flight stayed at the limit: it does not answer")

// Sign signs digest with the key in the token (crypto.Signer), within
// the timeout.
func (k *Key) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	b, err := k.binding()
	if err != nil {
		return nil, k.failed(b, "error", err)
	}
	timer := time.NewTimer(k.timeout)
	defer timer.Stop()
	select {
	case b.slots <- struct{}{}:
	case <-timer.C:
		return nil, k.failed(b, "busy", errBusy)
	}
	type result struct {
		sig []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		// The slot is given back only when the module returns: a token
		// that hangs keeps at most cap(slots) threads.
		defer func() { <-b.slots }()
		defer func() {
			if p := recover(); p != nil {
				done <- result{err: fmt.Errorf("the PKCS#11 module panicked: %v", p)}
			}
		}()
		sig, err := b.signer.Sign(rand, digest, opts)
		done <- result{sig, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, k.failed(b, "error", r.err)
		}
		k.succeeded()
		return r.sig, nil
	case <-timer.C:
		return nil, k.failed(b, "timeout", fmt.Errorf("no answer from the token within %s", k.timeout))
	}
}

// failed counts, logs and returns a failed operation with b.
func (k *Key) failed(b *binding, result string, err error) error {
	k.m.Operations.WithLabelValues(k.info.URI, result).Inc()
	b.failed()
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
	k.m.Operations.WithLabelValues(k.info.URI, "ok").Inc()
	st := k.state
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.failing {
		k.log.Info("PKCS#11 key answers again", "key", k.info.URI, "failures_not_logged", st.suppressed)
		st.failing, st.suppressed = false, 0
	}
}
