package config

import (
	"reflect"
	"strings"
	"testing"
)

// TestLogTrace loads [log] trace: a list of strings, none by default.
func TestLogTrace(t *testing.T) {
	t.Parallel()
	c, err := loadTop(t, "")
	if err != nil || c.Log.Trace != nil {
		t.Fatalf("default: %q, %v", c.Log.Trace, err)
	}
	c, err = loadTop(t, "[log]\ntrace = [\"192.0.2.7\", \"2001:db8::/48\", \"alice@example.com\"]")
	if err != nil || !reflect.DeepEqual(c.Log.Trace, []string{"192.0.2.7", "2001:db8::/48", "alice@example.com"}) {
		t.Fatalf("set: %q, %v", c.Log.Trace, err)
	}
	if _, err := loadTop(t, "[log]\ntrace = \"192.0.2.7\""); err == nil || !strings.Contains(err.Error(), "log.trace: expected an array of strings") {
		t.Errorf("a string: %v", err)
	}
}
