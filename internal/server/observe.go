package server

import (
	"context"
	"net"

	"postern/internal/admin"
	"postern/internal/config"
	"postern/internal/handover"
	"postern/internal/smtp"
	"postern/internal/smtpd"
)

// acceptObserver tells the status page's Events of each message a
// listener accepted, once the spool has it.
type acceptObserver struct {
	smtpd.Spooler
	ev *admin.Events
}

func (a acceptObserver) PutMessage(ctx context.Context, env *smtp.Envelope, msg *smtp.Message) error {
	if err := a.Spooler.PutMessage(ctx, env, msg); err != nil {
		return err
	}
	a.ev.Accepted(env.ReceivedAt)
	return nil
}

// listenerInfo lists the SMTP listeners (ls, in cfg.Listeners order)
// and the HTTP ones in socks, for the status page.
func listenerInfo(cfg *config.Config, ls []net.Listener, socks *handover.Sockets) []admin.ListenerInfo {
	var out []admin.ListenerInfo
	for i, lc := range cfg.Listeners {
		out = append(out, admin.ListenerInfo{Name: lc.Name, Role: string(lc.Role), Address: ls[i].Addr().String()})
	}
	for _, x := range []struct{ name, role string }{
		{"http", "metrics and health"}, {"admin", "admin API and this page"},
	} {
		if l := socks.Get(x.name); l != nil {
			out = append(out, admin.ListenerInfo{Name: x.name, Role: x.role, Address: l.Addr().String()})
		}
	}
	return out
}
