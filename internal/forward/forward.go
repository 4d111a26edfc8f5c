// Package forward forwards mail for aliases whose targets include
// addresses in other domains: the message goes to them unchanged (so its
// DKIM signatures stay valid), as a new message in the spool whose
// envelope sender is rewritten with SRS (internal/srs) into a local
// domain, so that SPF passes at the destination. A bounce to the
// rewritten sender comes back on port 25, is taken at RCPT only when the
// address verifies (Directory), and is forwarded to the original sender.
//
// The Forwarder is the alias expander of local delivery (it implements
// delivery.Aliases); internal/server wires it, its spool and its Directory.
package forward

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"postern/internal/addrkey"
	"postern/internal/delivery"
	"postern/internal/fsutil"
	"postern/internal/queue"
	"postern/internal/smtp"
	"postern/internal/spool"
	"postern/internal/srs"
	"postern/internal/userdb"
)

// Options configure a Forwarder.
type Options struct {
	// Directory expands local recipients (users, aliases).
	Directory *userdb.Directory
	// SRS rewrites forwarded senders and verifies bounces to them.
	SRS *srs.Rewriter
	// Domain is the domain of rewritten senders (srs.domain); "" means
	// the forwarding alias's domain.
	Domain string
	// Logger logs forwarded copies; nil discards.
	Logger *slog.Logger
	// Now is the clock of forwarded copies' ids; nil means time.Now.
	Now func() time.Time
}

// Forwarder expands local recipients for local delivery and queues the
// forwarded copies.
type Forwarder struct {
	o     Options
	spool atomic.Pointer[spool.Spool]
}

// New returns a Forwarder; it queues nothing until SetSpool.
func New(o Options) *Forwarder {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Forwarder{o: o}
}

// SetSpool sets the spool forwarded copies go in: serve's start sets it,
// and again after a failed graceful restart.
func (f *Forwarder) SetSpool(sp *spool.Spool) { f.spool.Store(sp) }

// CreateSecretFile writes a new random SRS secret to path (0600) unless
// a file is there already: the default srs.secret_file is made on first
// start.
func CreateSecretFile(path string) error {
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	var k [32]byte
	rand.Read(k[:])
	if err := fsutil.WriteFile(path, []byte(base64.RawStdEncoding.EncodeToString(k[:])+"\n"), 0o600); err != nil {
		return fmt.Errorf("forward: srs.secret_file: %w", err)
	}
	return nil
}

// Directory is the Directory of the SMTP sessions: the user directory,
// where an SRS address in a local domain exists when it verifies, so a
// forged or expired one is refused at RCPT (550 5.1.1) rather than
// bounced later. It implements smtpd.Directory.
type Directory struct {
	*userdb.Directory
	srs *srs.Rewriter
}

// Directory returns the Directory of the SMTP sessions.
func (f *Forwarder) Directory() Directory { return Directory{f.o.Directory, f.o.SRS} }

// RecipientExists reports whether addr is a local recipient or an SRS
// address made here that has not expired.
func (d Directory) RecipientExists(ctx context.Context, addr string) (bool, error) {
	if srs.IsSRS(addr) && d.IsLocalDomain(addrkey.DomainOf(addr)) {
		if _, err := d.srs.Reverse(addr); err == nil {
			return true, nil
		}
	}
	return d.Directory.RecipientExists(ctx, addr)
}

// Expand returns the mailboxes of rcpt, a local recipient of env, and
// the number of copies it queued that go elsewhere: to the alias
// targets in other domains (the sender rewritten with SRS), or, for an
// SRS address made here, to the address it stands for (the sender kept:
// a bounce has none). A recipient that names nobody, or an SRS address that does not
// verify, is a permanent failure. The copies carry rcpt's DSN
// parameters as RFC 3461 §6.2.7 says (copyDSN). It implements
// delivery.Aliases.
func (f *Forwarder) Expand(ctx context.Context, env *smtp.Envelope, rcpt string, msg *smtp.Message) (delivery.Expansion, error) {
	if srs.IsSRS(rcpt) {
		if orig, err := f.o.SRS.Reverse(rcpt); err == nil {
			err := f.queue(ctx, env, env.From, rcpt, []string{orig}, msg, false)
			return delivery.Expansion{Forwarded: 1}, err
		} else if !errors.Is(err, srs.ErrNotSRS) {
			if _, derr := f.o.Directory.Expand(rcpt); derr != nil { // not a user named so either
				return delivery.Expansion{}, queue.Permanent(fmt.Errorf("%s: %w", rcpt, err))
			}
		}
	}
	x, err := f.o.Directory.Expand(rcpt)
	if errors.Is(err, userdb.ErrNotFound) {
		return delivery.Expansion{}, queue.Permanent(err) // the user was deleted since RCPT
	}
	if err != nil {
		return delivery.Expansion{}, err
	}
	out := delivery.Expansion{Mailboxes: x.Mailboxes, Forwarded: len(x.Forward)}
	if len(x.Forward) > 0 {
		if err := f.queue(ctx, env, f.sender(env.From, rcpt), rcpt, x.Forward, msg, out.Expanded()); err != nil {
			return delivery.Expansion{}, err
		}
	}
	return out, nil
}

// Mailbox returns the one mailbox of rcpt when rcpt is no SRS address
// and expands to exactly one mailbox and no forwarding: then writing
// that mailbox is the whole delivery (delivery.Direct). It implements
// delivery.Aliases.
func (f *Forwarder) Mailbox(ctx context.Context, rcpt string) (string, bool) {
	if srs.IsSRS(rcpt) {
		return "", false
	}
	x, err := f.o.Directory.Expand(rcpt)
	if err != nil || len(x.Forward) > 0 || len(x.Mailboxes) != 1 {
		return "", false
	}
	return x.Mailboxes[0], true
}

// sender returns the envelope sender of a copy of mail from from,
// forwarded by the alias rcpt: from rewritten with SRS into the Domain
// option or rcpt's domain; unchanged when it is null or in a local
// domain (this server may send for it anyway), or too long to rewrite.
func (f *Forwarder) sender(from, rcpt string) string {
	if from == "" || f.o.Directory.IsLocalDomain(addrkey.DomainOf(from)) {
		return from
	}
	domain := f.o.Domain
	if domain == "" {
		domain = addrkey.DomainOf(rcpt)
	}
	s, err := f.o.SRS.Forward(from, domain)
	if err != nil {
		f.o.Logger.Warn("forward: sender not rewritten; SPF may fail at the destination", "from", from, "err", err)
		return from
	}
	return s
}

// queue puts a copy of msg from from to rcpts, the targets of env's
// recipient via, in the spool, with the DSN parameters of via
// (copyDSN); expanded says that via has other targets too.
func (f *Forwarder) queue(ctx context.Context, env *smtp.Envelope, from, via string, rcpts []string, msg *smtp.Message, expanded bool) error {
	sp := f.spool.Load()
	if sp == nil {
		return errors.New("forward: no spool")
	}
	now := f.o.Now()
	fwd := &smtp.Envelope{
		ID: smtp.NewID(now), From: from, Recipients: rcpts, SMTPUTF8: env.SMTPUTF8, Body: env.Body,
		Listener: "forward", ReceivedAt: now, RequireTLS: env.RequireTLS,
		Ret: env.Ret, EnvID: env.EnvID,
	}
	if d, ok := env.DSN[via]; ok {
		d = copyDSN(d, via, expanded)
		fwd.DSN = make(map[string]smtp.RcptDSN, len(rcpts))
		for _, r := range rcpts {
			fwd.DSN[r] = d
		}
	}
	if err := sp.PutMessage(ctx, fwd, msg); err != nil {
		return fmt.Errorf("forward: %w", err)
	}
	f.o.Logger.Info("forwarded", "id", env.ID, "rcpt", via, "forward_id", fwd.ID, "from", from, "to", strings.Join(rcpts, ","))
	return nil
}

// copyDSN returns the DSN parameters of a forwarded copy for the alias
// via, whose own are d. RFC 3461 §6.2.7.2: an alias with one target
// passes NOTIFY and ORCPT on unchanged. §6.2.7.3: an alias with several
// targets was reported "expanded" (delivery.Expansion), so its copies
// ask for no success notice again (NOTIFY=SUCCESS alone becomes NEVER).
// Either way, when the sender gave no ORCPT the copy names via, the
// address it was received for (§4.2), as Postfix does, so that the
// sender can tell which of its recipients a notice is about.
func copyDSN(d smtp.RcptDSN, via string, expanded bool) smtp.RcptDSN {
	if expanded && d.Notify&smtp.NotifySuccess != 0 {
		d.Notify &^= smtp.NotifySuccess
		if d.Notify == 0 {
			d.Notify = smtp.NotifyNever
		}
	}
	if d.ORcpt == "" {
		d.ORcpt = "rfc822;" + via
		if !smtp.IsASCII(via) {
			d.ORcpt = "utf-8;" + via // RFC 6533 §3
		}
	}
	return d
}
