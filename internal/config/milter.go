package config

import (
	"fmt"
	"slices"
	"time"

	"postern/internal/milter"
)

// Defaults of a [[milter]] table: Postfix's milter_connect_timeout,
// milter_command_timeout, milter_content_timeout and
// milter_default_action.
const (
	DefaultMilterConnectTimeout = 30 * time.Second
	DefaultMilterCommandTimeout = 30 * time.Second
	DefaultMilterContentTimeout = 5 * time.Minute
	DefaultMilterAction         = string(milter.DefaultTempfail)
)

// Milter is one [[milter]] table: a mail filter (rspamd, OpenDKIM,
// clamav-milter...) the listeners of its roles hand their sessions to,
// in the order of the tables.
type Milter struct {
	// Name names it in logs and metrics; default the address.
	Name string
	// Address is where it listens, as Postfix writes it:
	// "inet:host:port" or "unix:/path".
	Address string
	// Roles are the listener roles that use it; default all three.
	Roles []Role
	// DefaultAction is "tempfail" or "accept": what happens when it is
	// down, too slow or broken.
	DefaultAction string
	// ConnectTimeout bounds connecting to it; CommandTimeout each of
	// connect, HELO, MAIL, RCPT and DATA; ContentTimeout each header
	// field, body chunk and the end of the message.
	ConnectTimeout, CommandTimeout, ContentTimeout time.Duration
}

// MiltersFor returns the milters of listeners of role, in order.
func (c *Config) MiltersFor(role Role) []Milter {
	var out []Milter
	for _, m := range c.Milters {
		if slices.Contains(m.Roles, role) {
			out = append(out, m)
		}
	}
	return out
}

// milters decodes the [[milter]] tables.
func (d *decoder) milters(v any) []Milter {
	var out []Milter
	keys, tables := d.tables(v, "milter")
	for i, t := range tables {
		k := keys[i]
		d.unknown(t, []string{"milter"}, "name", "address", "roles", "default_action",
			"connect_timeout", "command_timeout", "content_timeout")
		m := Milter{
			Roles:          []Role{RoleMX, RoleSubmission, RoleSubmissions},
			DefaultAction:  DefaultMilterAction,
			ConnectTimeout: DefaultMilterConnectTimeout,
			CommandTimeout: DefaultMilterCommandTimeout,
			ContentTimeout: DefaultMilterContentTimeout,
		}
		d.str(t, "address", k+".address", &m.Address)
		if !d.str(t, "name", k+".name", &m.Name) {
			m.Name = m.Address
		}
		var roles []string
		if d.strs(t, "roles", k+".roles", &roles) {
			m.Roles = nil
			for _, r := range roles {
				m.Roles = append(m.Roles, Role(lower(r)))
			}
		}
		if d.str(t, "default_action", k+".default_action", &m.DefaultAction) {
			m.DefaultAction = lower(m.DefaultAction)
		}
		d.durations(t, k+".", []field[time.Duration]{
			{"connect_timeout", &m.ConnectTimeout},
			{"command_timeout", &m.CommandTimeout},
			{"content_timeout", &m.ContentTimeout},
		})
		out = append(out, m)
	}
	return out
}

// validateMilters checks the [[milter]] tables.
func (c *Config) validateMilters(p *problems) {
	for i, m := range c.Milters {
		k := fmt.Sprintf("milter[%d]", i)
		if _, _, err := milter.ParseAddress(m.Address); err != nil {
			p.addf(k+".address", "%q: want inet:host:port or unix:/path (as Postfix's smtpd_milters)", m.Address)
		}
		if m.Name == "" {
			p.addf(k+".name", "must not be empty")
		} else if j := slices.IndexFunc(c.Milters, func(o Milter) bool { return o.Name == m.Name }); j < i {
			p.addf(k+".name", "%q is already the name of milter[%d]", m.Name, j)
		}
		if len(m.Roles) == 0 {
			p.addf(k+".roles", "must name at least one role")
		}
		for j, r := range m.Roles {
			if r != RoleMX && r != RoleSubmission && r != RoleSubmissions {
				p.addf(fmt.Sprintf("%s.roles[%d]", k, j), "%q is not mx, submission or submissions", r)
			}
		}
		if m.DefaultAction != string(milter.DefaultTempfail) && m.DefaultAction != string(milter.DefaultAccept) {
			p.addf(k+".default_action", "%q is not tempfail or accept", m.DefaultAction)
		}
		for _, f := range []struct {
			name string
			v    time.Duration
		}{{"connect_timeout", m.ConnectTimeout}, {"command_timeout", m.CommandTimeout}, {"content_timeout", m.ContentTimeout}} {
			if f.v <= 0 {
				p.addf(k+"."+f.name, "must be more than 0")
			}
		}
	}
}
