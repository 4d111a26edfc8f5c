package main

// Forwarding: an alias whose targets include addresses in other domains
// forwards the message to them, unchanged (so its DKIM signatures stay
// valid), as a new message in the spool whose envelope sender is
// rewritten with SRS (internal/srs) into a local domain, so that SPF
// passes at the destination. A bounce to the rewritten sender comes
// back on port 25, is taken at RCPT only when the address verifies, and
// is forwarded to the original sender.

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
	"postern/internal/config"
	"postern/internal/fsutil"
	"postern/internal/queue"
	"postern/internal/smtp"
	"postern/internal/smtpd"
	"postern/internal/spool"
	"postern/internal/srs"
	"postern/internal/userdb"
)

// forwarder expands local recipients for local delivery and queues the
// forwarded copies.
type forwarder struct {
	dir    *userdb.Directory
	srs    *srs.Rewriter
	domain string // srs.domain; "" means the forwarding alias's domain
	log    *slog.Logger
	spool  atomic.Pointer[spool.Spool] // set by serve's start, again after a failed graceful restart
}

// newForwarder reads the SRS secrets (srs.secret_file, by default
// DATA/srs.secret, which it creates when missing) and returns the
// forwarder.
func newForwarder(cfg *config.Config, dir *userdb.Directory, log *slog.Logger) (*forwarder, error) {
	secrets, err := srsSecrets(cfg)
	if err != nil {
		return nil, err
	}
	rw, err := srs.New(secrets, srsOptions(cfg))
	if err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	return &forwarder{dir: dir, srs: rw, domain: cfg.SRS.Domain, log: log}, nil
}

// srsSecrets reads the SRS secrets, one a line, as every secret file is
// read (config.ReadSecretList). The default file, DATA/srs.secret, is
// created with a random secret when missing; a file named in
// srs.secret_file must exist.
func srsSecrets(cfg *config.Config) ([][]byte, error) {
	path := cfg.SRS.SecretFile
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) && path == cfg.DefaultSRSSecretFile() {
		var k [32]byte
		rand.Read(k[:])
		if err := fsutil.WriteFile(path, []byte(base64.RawStdEncoding.EncodeToString(k[:])+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("serve: srs.secret_file: %w", err)
		}
	}
	list, err := cfg.SRSSecrets()
	if err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	out := make([][]byte, len(list))
	for i, s := range list {
		out[i] = []byte(s)
	}
	return out, nil
}

// directory is the Directory of the SMTP sessions: dir, where an SRS
// address in a local domain exists when it verifies.
func (f *forwarder) directory() smtpd.Directory { return srsDirectory{f.dir, f.srs} }

// srsDirectory takes, at RCPT, the SRS addresses made here that have not
// expired: a forged or expired one is refused (550 5.1.1) rather than
// bounced later.
type srsDirectory struct {
	*userdb.Directory
	srs *srs.Rewriter
}

func (d srsDirectory) RecipientExists(ctx context.Context, addr string) (bool, error) {
	if srs.IsSRS(addr) && d.IsLocalDomain(addrkey.DomainOf(addr)) {
		if _, err := d.srs.Reverse(addr); err == nil {
			return true, nil
		}
	}
	return d.Directory.RecipientExists(ctx, addr)
}

// Expand returns the mailboxes of rcpt, a local recipient of env, after
// queueing the copies that go elsewhere: to the alias targets in other
// domains (the sender rewritten with SRS), or, for an SRS address made
// here, to the address it stands for (the sender kept: a bounce has
// none). A recipient that names nobody, or an SRS address that does not
// verify, is a permanent failure. It implements delivery.Aliases.
func (f *forwarder) Expand(ctx context.Context, env *smtp.Envelope, rcpt string, msg *smtp.Message) ([]string, error) {
	if srs.IsSRS(rcpt) {
		if orig, err := f.srs.Reverse(rcpt); err == nil {
			return nil, f.queue(ctx, env, env.From, rcpt, []string{orig}, msg)
		} else if !errors.Is(err, srs.ErrNotSRS) {
			if _, derr := f.dir.Expand(rcpt); derr != nil { // not a user named so either
				return nil, queue.Permanent(fmt.Errorf("%s: %w", rcpt, err))
			}
		}
	}
	x, err := f.dir.Expand(rcpt)
	if errors.Is(err, userdb.ErrNotFound) {
		return nil, queue.Permanent(err) // the user was deleted since RCPT
	}
	if err != nil {
		return nil, err
	}
	if len(x.Forward) > 0 {
		if err := f.queue(ctx, env, f.sender(env.From, rcpt), rcpt, x.Forward, msg); err != nil {
			return nil, err
		}
	}
	return x.Mailboxes, nil
}

// Mailbox returns the one mailbox of rcpt when rcpt is no SRS address
// and expands to exactly one mailbox and no forwarding: then writing
// that mailbox is the whole delivery (delivery.Direct). It implements
// delivery.Aliases.
func (f *forwarder) Mailbox(ctx context.Context, rcpt string) (string, bool) {
	if srs.IsSRS(rcpt) {
		return "", false
	}
	x, err := f.dir.Expand(rcpt)
	if err != nil || len(x.Forward) > 0 || len(x.Mailboxes) != 1 {
		return "", false
	}
	return x.Mailboxes[0], true
}

// sender returns the envelope sender of a copy of mail from from,
// forwarded by the alias rcpt: from rewritten with SRS into srs.domain
// or rcpt's domain; unchanged when it is null or in a local domain (this
// server may send for it anyway), or too long to rewrite.
func (f *forwarder) sender(from, rcpt string) string {
	if from == "" || f.dir.IsLocalDomain(addrkey.DomainOf(from)) {
		return from
	}
	domain := f.domain
	if domain == "" {
		domain = addrkey.DomainOf(rcpt)
	}
	s, err := f.srs.Forward(from, domain)
	if err != nil {
		f.log.Warn("forward: sender not rewritten; SPF may fail at the destination", "from", from, "err", err)
		return from
	}
	return s
}

// queue puts a copy of msg from from to rcpts in the spool.
func (f *forwarder) queue(ctx context.Context, env *smtp.Envelope, from, via string, rcpts []string, msg *smtp.Message) error {
	sp := f.spool.Load()
	if sp == nil {
		return errors.New("forward: no spool")
	}
	now := time.Now()
	fwd := &smtp.Envelope{
		ID: smtp.NewID(now), From: from, Recipients: rcpts, SMTPUTF8: env.SMTPUTF8, Body: env.Body,
		Listener: "forward", ReceivedAt: now, RequireTLS: env.RequireTLS,
	}
	if err := sp.PutMessage(ctx, fwd, msg); err != nil {
		return fmt.Errorf("forward: %w", err)
	}
	f.log.Info("forwarded", "id", env.ID, "rcpt", via, "forward_id", fwd.ID, "from", from, "to", strings.Join(rcpts, ","))
	return nil
}
