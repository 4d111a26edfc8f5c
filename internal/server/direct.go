package server

import (
	"postern/internal/addrkey"
	"postern/internal/delivery"
	"postern/internal/smtpd"
	"postern/internal/spool"
)

// intake is where the listeners put accepted messages: the spool, behind
// direct local delivery before the 250 unless delivery.direct_local is
// off (delivery.Direct; the status page and the log hear of its
// deliveries as of the queue's).
func (b *serveBase) intake(sp *spool.Spool) smtpd.Spooler {
	if !b.cfg.Delivery.DirectLocal {
		return sp
	}
	return &delivery.Direct{
		Local: b.local, Spool: sp, Logger: b.log, Observe: b.events.Delivery,
		IsLocal: func(addr string) bool { return b.dir.IsLocalDomain(addrkey.DomainOf(addr)) },
	}
}
