package config

import (
	"net"
	"net/netip"
	"strings"
)

// Admin is the [admin] table: who may use the admin socket, and the
// admin API and status page over HTTP.
type Admin struct {
	// SocketGroup, when set, is the group that may use DATA/admin.sock
	// besides root and the server's own user: the socket is made mode
	// 0660 with this group, and the data directory group-searchable
	// (0710) with it. "" (the default) keeps the socket 0600.
	SocketGroup string
	// HTTPAddress, when set, serves the admin API and the status page
	// over HTTP on this address, behind the token in TokenFile. ""
	// (the default) serves them on the socket only.
	HTTPAddress string
	// TokenFile holds the admin token (its first line, at least
	// MinAdminToken characters). Required with HTTPAddress.
	TokenFile string
	// HTTPTLS serves HTTPAddress over TLS with the server's
	// certificate; default true. false is allowed on a loopback
	// address only.
	HTTPTLS bool
}

// MinAdminToken is the shortest admin token accepted.
const MinAdminToken = 16

// defaultAdmin returns the [admin] defaults.
func defaultAdmin() Admin { return Admin{HTTPTLS: true} }

// admin decodes the [admin] table.
func (d *decoder) admin(t map[string]any, dir string, a *Admin) {
	if t == nil {
		return
	}
	d.unknown(t, []string{"admin"}, "socket_group", "http_address", "token_file", "http_tls")
	d.str(t, "socket_group", "admin.socket_group", &a.SocketGroup)
	d.str(t, "http_address", "admin.http_address", &a.HTTPAddress)
	d.path(t, "token_file", "admin.token_file", dir, &a.TokenFile)
	d.boolean(t, "http_tls", "admin.http_tls", &a.HTTPTLS)
}

// validateAdmin checks [admin].
func (c *Config) validateAdmin(p *problems) {
	a := c.Admin
	if a.SocketGroup != "" && strings.ContainsAny(a.SocketGroup, " \t\n:/") {
		p.addf("admin.socket_group", "%q is not a group name", a.SocketGroup)
	}
	if a.HTTPAddress == "" {
		return
	}
	if err := checkListenAddress(a.HTTPAddress); err != nil {
		p.add("admin.http_address", err)
		return
	}
	if a.HTTPAddress == c.HTTP.Address {
		p.addf("admin.http_address", "%q is also http.address", a.HTTPAddress)
	}
	for _, l := range c.Listeners {
		if l.Address == a.HTTPAddress {
			p.addf("admin.http_address", "%q is also the address of listener %s", a.HTTPAddress, l.Name)
		}
	}
	if a.TokenFile == "" {
		p.addf("admin.token_file", "is required with http_address")
	}
	if !a.HTTPTLS && !loopbackAddress(a.HTTPAddress) {
		p.addf("admin.http_tls", "may be false only on a loopback address (127.0.0.1, ::1), not %q: the token would cross the network in the clear", a.HTTPAddress)
	}
}

// loopbackAddress reports whether the host of the listen address s is a
// loopback IP address.
func loopbackAddress(s string) bool {
	host, _, err := net.SplitHostPort(s)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
