package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigPrint: postern config prints the configuration in effect,
// which loads back as the same (printing it again gives the same text);
// -n only what differs from the defaults; -d the defaults.
func TestConfigPrint(t *testing.T) {
	integration(t)
	s := testConfig(t, t.TempDir(), "\n[aliases]\n\"info@example.test\" = \"alice@example.test\"\n")
	full, err := s.run("", "config")
	if err != nil {
		t.Fatalf("config: %v\n%s", err, full)
	}
	for _, want := range []string{"max_recipients = 100\n", "[aliases]\n\"info@example.test\" = [\"alice@example.test\"]\n", "[[listener]]\n", "shutdown_timeout = \"5s\"\n"} {
		if !strings.Contains(full, want) {
			t.Errorf("config lacks %q:\n%s", want, full)
		}
	}
	again := filepath.Join(t.TempDir(), "again.toml")
	os.WriteFile(again, []byte(full), 0o600)
	out, err := (&server{t: t, config: again}).run("", "config")
	if err != nil {
		t.Fatalf("config of the printed configuration: %v\n%s", err, out)
	}
	body := func(s string) string { _, b, _ := strings.Cut(s, "\n"); return b } // without the comment line
	if body(out) != body(full) {
		t.Errorf("the printed configuration loads differently:\n%s\nthen:\n%s", full, out)
	}

	changed, err := s.run("", "config", "-n")
	if err != nil || !strings.Contains(changed, "\"info@example.test\" = [\"alice@example.test\"]") ||
		!strings.Contains(changed, "shutdown_timeout = \"5s\"") || strings.Contains(changed, "max_recipients") {
		t.Errorf("config -n: %v\n%s", err, changed)
	}
	defs, err := s.run("", "config", "-d")
	if err != nil || !strings.Contains(defs, "max_recipients = 100\n") || !strings.Contains(defs, "shutdown_timeout = \"30s\"") || strings.Contains(defs, "info@example.test") {
		t.Errorf("config -d: %v\n%s", err, defs)
	}
}
