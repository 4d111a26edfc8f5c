package config

// Socket is one listening TCP socket serve binds (or takes from systemd,
// or from the old process of a graceful restart, by its name).
type Socket struct {
	// Name is the [[listener]]'s name, or "http", "admin", "autoconfig",
	// "acme-http-01" or "acme-tls-alpn-01".
	Name string
	// Address is the address to bind, "host:port".
	Address string
	// What names the socket in an error: "listener NAME", or the key
	// that sets the address ("admin.http_address").
	What string
}

// Sockets returns the listening sockets of the configuration: the
// [[listener]]s in order, then the HTTP endpoint, the admin API over
// HTTP, the mail clients' settings and the ACME challenge responder, the
// ones configured.
func (c *Config) Sockets() []Socket {
	var out []Socket
	for _, l := range c.Listeners {
		out = append(out, Socket{l.Name, l.Address, "listener " + l.Name})
	}
	if c.HTTP.Address != "" {
		out = append(out, Socket{"http", c.HTTP.Address, "http"})
	}
	if c.Admin.HTTPAddress != "" {
		out = append(out, Socket{"admin", c.Admin.HTTPAddress, "admin.http_address"})
	}
	if c.Autoconfig.Enabled {
		out = append(out, Socket{"autoconfig", c.Autoconfig.Address, "autoconfig.address"})
	}
	if c.ACME.Enabled {
		switch c.ACME.Challenge {
		case ChallengeHTTP01:
			out = append(out, Socket{"acme-http-01", c.ACME.HTTPAddress, "acme.http_address"})
		case ChallengeTLSALPN01:
			out = append(out, Socket{"acme-tls-alpn-01", c.ACME.TLSALPNAddress, "acme.tls_alpn_address"})
		}
	}
	return out
}
