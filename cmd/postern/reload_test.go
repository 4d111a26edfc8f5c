package main

import (
	"errors"
	"io"
	"strings"
	"testing"

	"postern/internal/admin"
	"postern/internal/server"
)

func TestReloadNotRunning(t *testing.T) {
	dir := t.TempDir()
	err := cmdReload([]string{"--data", dir}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "postern is not running") {
		t.Fatalf("got %v", err)
	}
	if err := cmdReload([]string{"extra", "--data", dir}, io.Discard); err == nil {
		t.Fatal("an argument was accepted")
	} else if !errors.As(err, new(usageError)) {
		t.Fatalf("not a usage error: %v", err)
	}
}

// TestWriteReloadReport: what `postern reload` prints.
func TestWriteReloadReport(t *testing.T) {
	var b strings.Builder
	writeReloadReport(&b, admin.ReloadReport{
		Config:       "/etc/postern/postern.toml",
		Changed:      []admin.ReloadChange{{Key: `aliases."info@example.com"`, Old: "(none)", New: `["alice@example.com"]`}},
		NeedsRestart: []admin.ReloadChange{{Key: "listener[0].address", Old: `":25"`, New: `":2525"`}},
		Reloaded:     []string{"certificates", "users"},
	})
	want := `Reloaded /etc/postern/postern.toml:
  applied:
    aliases."info@example.com": (none) → ["alice@example.com"]
  needs a restart (not applied; postern restart applies it):
    listener[0].address: ":25" → ":2525"
  reloaded: certificates, users
`
	if b.String() != want {
		t.Errorf("report:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	writeReloadReport(&b, admin.ReloadReport{Config: "/etc/postern/postern.toml", Reloaded: []string{"certificates", "users"}})
	if !strings.Contains(b.String(), "the configuration is unchanged") {
		t.Errorf("unchanged:\n%s", b.String())
	}
	b.Reset()
	writeReloadReport(&b, admin.ReloadReport{Config: "/etc/postern/postern.toml", Errors: []string{server.RefusedPrefix + "delivery.ca_file: missing"}})
	if !strings.HasPrefix(b.String(), "Configuration /etc/postern/postern.toml refused; the running one serves on:") {
		t.Errorf("refused:\n%s", b.String())
	}
}
