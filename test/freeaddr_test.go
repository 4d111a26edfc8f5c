package test

import (
	"net"
	"strconv"
	"testing"
)

// TestFreeAddrBelowEphemeralRange: the ports freeAddr hands out lie below
// the kernel's ephemeral range, where no other process's connection or
// listen on port 0 can take them before the server binds, and none is
// handed out twice.
func TestFreeAddrBelowEphemeralRange(t *testing.T) {
	low := ephemeralLow()
	seen := map[string]bool{}
	for range 50 {
		a := freeAddr(t)
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := strconv.Atoi(port)
		if host != "127.0.0.1" || p < portLow || p >= low {
			t.Errorf("freeAddr gave %s; want 127.0.0.1 and a port in [%d, %d)", a, portLow, low)
		}
		if seen[a] {
			t.Errorf("freeAddr gave %s twice", a)
		}
		seen[a] = true
	}
}
