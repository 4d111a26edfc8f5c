package config

import "strings"

// Process holds the top-level keys user and group: the unprivileged
// identity Postern serves as when it is started as root.
type Process struct {
	// User is the user name (or numeric uid) Postern switches to after
	// it has bound its listeners, when started as root. "" (the
	// default) keeps the identity it was started with; as root that is
	// logged as a warning.
	User string
	// Group is the group name (or numeric gid) it switches to; "" means
	// the user's primary group. Only with User.
	Group string
}

// process decodes the top-level keys user and group.
func (d *decoder) process(tree map[string]any, p *Process) {
	d.str(tree, "user", "user", &p.User)
	d.str(tree, "group", "group", &p.Group)
}

// validateProcess checks user and group.
func (c *Config) validateProcess(p *problems) {
	for _, f := range []struct{ key, v string }{{"user", c.Process.User}, {"group", c.Process.Group}} {
		if f.v != "" && (strings.ContainsAny(f.v, " \t\r\n:/") || len(f.v) > 64) {
			p.addf(f.key, "%q is not a user or group name", f.v)
		}
	}
	if c.Process.Group != "" && c.Process.User == "" {
		p.addf("group", "set user too: group only applies when Postern switches to user")
	}
}
