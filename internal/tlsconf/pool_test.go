package tlsconf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// LoadPool names the configuration key in its errors, and takes a file
// of PEM certificates with or without the system roots.
func TestLoadPool(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, _, err := EnsureSelfSigned(dir, []string{"ca.example"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, sys := range []bool{false, true} {
		if p, err := LoadPool(certFile, "tls.ca_file", sys); err != nil || p == nil {
			t.Errorf("system %v: %v", sys, err)
		}
	}
	if _, err := LoadPool(filepath.Join(dir, "missing.pem"), "tls.ca_file", false); err == nil || !strings.HasPrefix(err.Error(), "tls.ca_file: open ") {
		t.Errorf("missing: %v", err)
	}
	bad := filepath.Join(dir, "bad.pem")
	os.WriteFile(bad, []byte("not pem"), 0o600)
	if _, err := LoadPool(bad, "delivery.ca_file", true); err == nil || err.Error() != "delivery.ca_file "+bad+": no PEM certificate" {
		t.Errorf("no PEM: %v", err)
	}
}
