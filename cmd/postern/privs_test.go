package main

import (
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"postern/internal/config"
)

func TestPreBoundListen(t *testing.T) {
	a, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	extra, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &preBound{named: map[string]net.Listener{"mx": a}, unnamed: []net.Listener{b, extra}}
	if l, err := p.listen("mx", "127.0.0.1:1"); err != nil || l != a {
		t.Errorf("by name: %v, %v", l, err)
	}
	_, port, _ := net.SplitHostPort(b.Addr().String())
	if l, err := p.listen("submission", ":"+port); err != nil || l != b {
		t.Errorf("by port: %v, %v", l, err)
	}
	l, err := p.listen("submissions", "127.0.0.1:0") // nothing passed: bound now
	if err != nil || l == a || l == b || l == extra {
		t.Errorf("bound now: %v, %v", l, err)
	}
	l.Close()
	p.closeUnused(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if _, err := extra.Accept(); err == nil {
		t.Error("unused listener not closed")
	}
}

func TestCheckDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	os.Mkdir(dir, 0o700)
	if err := checkDataDir(dir, config.Process{}); err != nil {
		t.Errorf("0700, ours: %v", err)
	}
	os.Chmod(dir, 0o770)
	err := checkDataDir(dir, config.Process{User: "postern"})
	if err == nil || !strings.Contains(err.Error(), "writable by others (mode 0770); fix: chown -R postern: "+dir+" && chmod 700 "+dir) {
		t.Errorf("0770: %v", err)
	}
	os.Chmod(dir, 0o750)
	if err := checkDataDir(dir, config.Process{}); err != nil {
		t.Errorf("0750: %v", err)
	}
}
