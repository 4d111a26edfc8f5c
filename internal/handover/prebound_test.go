package handover

import (
	"io"
	"log/slog"
	"net"
	"testing"
)

func TestPreboundListen(t *testing.T) {
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
	p := NewPrebound(Passed{From: "systemd", Sockets: []Socket{{Name: "mx", Listener: a}, {Name: "b", Listener: b}, {Name: "mx", Listener: extra}}},
		func(name string) bool { return name == "mx" })
	if !p.Has("mx") || p.Has("b") {
		t.Errorf("Has: mx %v, b %v", p.Has("mx"), p.Has("b"))
	}
	if l, err := p.Listen("mx", "127.0.0.1:1"); err != nil || l != a {
		t.Errorf("by name: %v, %v", l, err)
	}
	_, port, _ := net.SplitHostPort(b.Addr().String())
	if l, err := p.Listen("submission", ":"+port); err != nil || l != b {
		t.Errorf("by port: %v, %v", l, err)
	}
	l, err := p.Listen("submissions", "127.0.0.1:0") // nothing passed: bound now
	if err != nil || l == a || l == b || l == extra {
		t.Errorf("bound now: %v, %v", l, err)
	}
	l.Close()
	p.CloseUnused(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if _, err := extra.Accept(); err == nil {
		t.Error("unused listener not closed")
	}
}
