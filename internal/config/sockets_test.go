package config

import (
	"slices"
	"testing"
)

// TestSockets: the listeners first, in order, then the other sockets
// that are configured, each named as serve and systemd name it; ACME's
// responder is that of its challenge.
func TestSockets(t *testing.T) {
	var c Config
	c.Listeners = []Listener{{Name: "mx", Address: "127.0.0.1:25"}, {Name: "sub", Address: "127.0.0.1:587"}}
	if got, want := c.Sockets(), []Socket{{"mx", "127.0.0.1:25", "listener mx"}, {"sub", "127.0.0.1:587", "listener sub"}}; !slices.Equal(got, want) {
		t.Errorf("listeners only: %v, want %v", got, want)
	}
	c.HTTP.Address = "127.0.0.1:8080"
	c.Admin.HTTPAddress = "127.0.0.1:8443"
	c.Autoconfig.Enabled, c.Autoconfig.Address = true, "127.0.0.1:8081"
	c.ACME.Enabled, c.ACME.Challenge, c.ACME.TLSALPNAddress, c.ACME.HTTPAddress = true, ChallengeTLSALPN01, "127.0.0.1:443", "127.0.0.1:80"
	want := []Socket{
		{"mx", "127.0.0.1:25", "listener mx"}, {"sub", "127.0.0.1:587", "listener sub"},
		{"http", "127.0.0.1:8080", "http"}, {"admin", "127.0.0.1:8443", "admin.http_address"},
		{"autoconfig", "127.0.0.1:8081", "autoconfig.address"}, {"acme-tls-alpn-01", "127.0.0.1:443", "acme.tls_alpn_address"},
	}
	if got := c.Sockets(); !slices.Equal(got, want) {
		t.Errorf("all: %v, want %v", got, want)
	}
	c.ACME.Challenge = ChallengeHTTP01
	want[5] = Socket{"acme-http-01", "127.0.0.1:80", "acme.http_address"}
	if got := c.Sockets(); !slices.Equal(got, want) {
		t.Errorf("http-01: %v, want %v", got, want)
	}
}
