package pkcs11

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeToken is a key whose Sign does what the test says: answer with
// the real key, fail, panic, or hang until released.
type fakeToken struct {
	key     *ecdsa.PrivateKey
	mode    atomic.Value // "ok", "error", "panic", "hang"
	release chan struct{}
}

func (f *fakeToken) Public() crypto.PublicKey { return f.key.Public() }

func (f *fakeToken) Sign(r io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) {
	switch f.mode.Load() {
	case "error":
		return nil, errors.New("CKR_DEVICE_REMOVED")
	case "panic":
		panic("module state corrupt")
	case "hang":
		<-f.release
	}
	return f.key.Sign(r, d, o)
}

// logBuf is a buffer for a text logger, safe for concurrent writes.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logBuf) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

func testKey(t *testing.T, name string, timeout time.Duration, inFlight int, now func() time.Time) (*Key, *fakeToken, *logBuf, *int) {
	t.Helper()
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeToken{key: ek, release: make(chan struct{})}
	f.mode.Store("ok")
	logs := &logBuf{}
	fails := new(int)
	k := newKey(&binding{signer: f, failed: func() { *fails++ }}, keyOptions{
		info: KeyInfo{URI: name},
		opts: Options{Timeout: timeout, MaxInFlight: inFlight, Logger: slog.New(slog.NewTextHandler(logs, nil)), Now: now},
	})
	return k, f, logs, fails
}

func digest() []byte { d := sha256.Sum256([]byte("handshake")); return d[:] }

// TestKeyFailuresAreErrors checks that a token that fails, panics or
// hangs gives the caller an error (never a panic or a hang), counted by
// result in postern_pkcs11_operations_total, and that the key is
// marked failed so that a reload reopens the token.
func TestKeyFailuresAreErrors(t *testing.T) {
	t.Parallel()
	const name = "pkcs11:token=T;object=failing;type=private"
	k, f, logs, fails := testKey(t, name, 50*time.Millisecond, 1, time.Now)
	count := func(result string) float64 {
		return testutil.ToFloat64(k.m.Operations.WithLabelValues(name, result))
	}

	sig, err := k.Sign(rand.Reader, digest(), crypto.SHA256)
	if err != nil || !ecdsa.VerifyASN1(&f.key.PublicKey, digest(), sig) {
		t.Fatalf("working token: %v", err)
	}
	for _, mode := range []string{"error", "panic", "hang"} {
		f.mode.Store(mode)
		_, err := k.Sign(rand.Reader, digest(), crypto.SHA256)
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: error %v, want one naming the key", mode, err)
		}
		if mode == "panic" && !strings.Contains(err.Error(), "module panicked") {
			t.Errorf("panic: error %v", err)
		}
	}
	// The hung operation still holds the only slot: the next one is
	// refused as busy after the timeout, without a new thread.
	if _, err := k.Sign(rand.Reader, digest(), crypto.SHA256); !errors.Is(err, errBusy) {
		t.Errorf("with the slot held by a hung call: %v, want errBusy", err)
	}
	for result, want := range map[string]float64{"ok": 1, "error": 2, "timeout": 1, "busy": 1} {
		if got := count(result); got != want {
			t.Errorf("postern_pkcs11_operations_total{result=%q} = %v, want %v", result, got, want)
		}
	}
	if *fails != 4 {
		t.Errorf("token told of %d failures, want 4", *fails)
	}
	if !strings.Contains(logs.String(), "PKCS#11 key operation failed") {
		t.Errorf("log:\n%s", logs.String())
	}

	// The token answers again: the hung call returns, the slot frees.
	f.mode.Store("ok")
	close(f.release)
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := k.Sign(rand.Reader, digest(), crypto.SHA256)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still failing after the token answers: %v", err)
		}
	}
	if !strings.Contains(logs.String(), "PKCS#11 key answers again") {
		t.Errorf("no recovery in the log:\n%s", logs.String())
	}
}

// TestKeyLogRateLimit checks that a key that keeps failing logs once,
// then at most every logEvery with the count of failures in between.
func TestKeyLogRateLimit(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	k, f, logs, _ := testKey(t, "pkcs11:token=T;object=rate;type=private", time.Second, 4, func() time.Time { return now })
	f.mode.Store("error")
	for range 5 {
		k.Sign(rand.Reader, digest(), crypto.SHA256)
	}
	if n := strings.Count(logs.String(), "operation failed"); n != 1 {
		t.Fatalf("%d failure lines after 5 failures in the same instant, want 1:\n%s", n, logs.String())
	}
	now = now.Add(logEvery)
	k.Sign(rand.Reader, digest(), crypto.SHA256)
	if n := strings.Count(logs.String(), "operation failed"); n != 2 || !strings.Contains(logs.String(), "failures_not_logged=4") {
		t.Fatalf("after %s: %d lines, want 2 with failures_not_logged=4:\n%s", logEvery, n, logs.String())
	}
}

// mismatched signs with one key and claims another's public key.
type mismatched struct{ fakeToken }

func (m *mismatched) Public() crypto.PublicKey {
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	return other.Public()
}

// TestSelfTest checks that SelfTest passes for a working key and fails
// for one whose signatures do not verify with its public key.
func TestSelfTest(t *testing.T) {
	t.Parallel()
	k, f, _, _ := testKey(t, "pkcs11:token=T;object=self;type=private", time.Second, 1, time.Now)
	if err := k.SelfTest(); err != nil {
		t.Errorf("working key: %v", err)
	}
	m := &mismatched{fakeToken{key: f.key}}
	m.mode.Store("ok")
	bad := newKey(&binding{signer: m}, keyOptions{info: KeyInfo{URI: "pkcs11:token=T;object=bad;type=private"}, opts: Options{Timeout: time.Second}})
	if err := bad.SelfTest(); err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Errorf("mismatched key: %v", err)
	}
}
