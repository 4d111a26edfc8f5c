package main

import (
	"errors"
	"io"
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
