//go:build !cgo

package pkcs11

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestNoCgo checks that a build without cgo says, for every key, that
// PKCS#11 is not supported in this build, and still parses the URI.
func TestNoCgo(t *testing.T) {
	t.Parallel()
	if Supported {
		t.Fatal("Supported is true without cgo")
	}
	tk := New(Options{Module: "/usr/lib/softhsm/libsofthsm2.so", PINFile: "/etc/pin", Timeout: 5 * time.Second})
	_, err := tk.Key("pkcs11:token=T;object=tlskey;type=private")
	var pe *Error
	if !errors.As(err, &pe) || pe.Kind != KindUnsupported || !strings.Contains(err.Error(), "not supported in this build") ||
		!strings.Contains(err.Error(), "without cgo") || pe.Fix == "" {
		t.Errorf("error %v (%+v)", err, pe)
	}
	if _, err := tk.Key("pkcs11:object=k"); !errors.As(err, &pe) || pe.Kind != KindConfig {
		t.Errorf("bad URI: %v", err)
	}
}
