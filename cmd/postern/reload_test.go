package main

import (
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
	} else if _, ok := err.(usageError); !ok {
		t.Fatalf("not a usage error: %v", err)
	}
}
