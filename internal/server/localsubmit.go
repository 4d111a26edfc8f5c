package server

import (
	"postern/internal/admin"
	"postern/internal/config"
	"postern/internal/sendmail"
	"postern/internal/smtpd"
	"postern/internal/spool"
	"postern/internal/userdb"
)

// localSubmit configures the admin socket's local submission; limiter
// applies [send_limits] to it, under the caller's Unix user
// (admin.LocalSender: "local:www-data"), as to SMTP users. A bare name
// the caller qualified ("root") that names no user or alias in dir goes
// to the postmaster (with dir nil, it stays as it is).
func localSubmit(cfg *config.Config, spool *spool.Spool, sign smtpd.Filter, limiter admin.SendLimiter, dir *userdb.Directory) *admin.LocalSubmit {
	ls := &admin.LocalSubmit{
		Submitter:      sendmail.Local{Spool: spool, Sign: sign},
		Limiter:        limiter,
		Hostname:       cfg.Hostname,
		MaxMessageSize: cfg.Limits.MaxMessageSize,
		MaxRecipients:  cfg.Limits.MaxRecipients,
	}
	if dir != nil {
		ls.RouteBare = sendmail.RouteBare(dir, cfg.Postmaster) // the postmaster, for a name nobody has
	}
	return ls
}
