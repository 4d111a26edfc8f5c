package server

import (
	"postern/internal/config"
	"postern/internal/milter"
)

// miltersOf returns the [[milter]] tables of listeners of role, in
// order, as smtpd.Server.Milters takes them.
func miltersOf(cfg *config.Config, role config.Role) []milter.Milter {
	var out []milter.Milter
	for _, m := range cfg.MiltersFor(role) {
		out = append(out, milter.Milter{
			Name: m.Name, Address: m.Address, DefaultAction: milter.DefaultAction(m.DefaultAction),
			ConnectTimeout: m.ConnectTimeout, CommandTimeout: m.CommandTimeout, ContentTimeout: m.ContentTimeout,
		})
	}
	return out
}
