package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
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

func TestReadAdminToken(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "token")
	os.WriteFile(p, []byte("  0123456789abcdef0123  \nsecond line\n"), 0o600)
	if tok, err := readAdminToken(p); err != nil || tok != "0123456789abcdef0123" {
		t.Errorf("got %q, %v", tok, err)
	}
	os.WriteFile(p, []byte("short\n"), 0o600)
	if _, err := readAdminToken(p); err == nil || !strings.Contains(err.Error(), "at least 16") {
		t.Errorf("short token: %v", err)
	}
	if _, err := readAdminToken(filepath.Join(dir, "none")); err == nil {
		t.Error("missing file accepted")
	}
}
