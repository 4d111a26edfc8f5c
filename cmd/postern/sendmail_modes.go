package main

// The modes of postern sendmail besides queueing one message: -bp (and
// the mailq link) lists the queue, -q tries the deferred mail now, -bs
// speaks SMTP on standard input and output. All go through the admin
// socket, as the default mode does.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"postern/internal/addrkey"
	"postern/internal/admin"
	"postern/internal/config"
	"postern/internal/sendmail"
	"postern/internal/smtp"
)

// parseFlush parses what follows -q: nothing (every deferred message),
// R or S and a site (the messages with a recipient, or the sender, at
// that domain), I and a queue id, or an interval ("1h", a daemon's
// period, which Postfix ignores too).
func (o *sendmailOpts) parseFlush(rest string) error {
	o.mode = modeFlush
	switch {
	case rest == "":
	case rest[0] == 'R' || rest[0] == 'S' || rest[0] == 'I':
		if len(rest) == 1 {
			return usageError{"sendmail: -q" + rest + " needs a value (as in -qRexample.com)"}
		}
		o.flushFilter = rest
	case rest[0] >= '0' && rest[0] <= '9':
		o.flushFilter = "interval" // flushes nothing
	default:
		return usageError{"sendmail: unsupported option -q" + rest}
	}
	return nil
}

// sendmailPrint lists the queue (-bp), as postern queue list does.
func sendmailPrint(c *admin.Client, stdout, stderr io.Writer, now time.Time) int {
	msgs, err := c.List(context.Background())
	if err != nil {
		fmt.Fprintf(stderr, "sendmail: -bp: %v\n", queueError(err, c.SocketPath, ""))
		return exitForAdmin(err)
	}
	printList(stdout, msgs, now)
	return exOK
}

// sendmailFlush makes the deferred recipients of the messages -q names
// due now (postern queue retry for each).
func sendmailFlush(c *admin.Client, o *sendmailOpts, stderr io.Writer) int {
	ctx := context.Background()
	msgs, err := c.List(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "sendmail: -q: %v\n", queueError(err, c.SocketPath, ""))
		return exitForAdmin(err)
	}
	for _, m := range msgs {
		if !flushes(m, o.flushFilter) {
			continue
		}
		if err := c.Retry(ctx, m.ID); err != nil && !errors.Is(err, admin.ErrNotFound) { // delivered meanwhile
			fmt.Fprintf(stderr, "sendmail: -q: %v\n", queueError(err, c.SocketPath, m.ID))
			return exitForAdmin(err)
		}
	}
	return exOK
}

// flushes reports whether -q with filter retries m: it has a deferred
// recipient and, with a filter, is the one named or has a recipient (R)
// or its sender (S) at the site.
func flushes(m admin.Message, filter string) bool {
	deferred := false
	for _, r := range m.Recipients {
		deferred = deferred || r.Status == "deferred"
	}
	if !deferred || m.Held || filter == "interval" {
		return false
	}
	if filter == "" {
		return true
	}
	kind, site := filter[0], addrkey.DomainKey(filter[1:])
	switch kind {
	case 'I':
		return m.ID == filter[1:]
	case 'S':
		return addrkey.DomainKey(addrkey.DomainOf(m.From)) == site
	}
	for _, r := range m.Recipients {
		if r.Status == "deferred" && addrkey.DomainKey(addrkey.DomainOf(r.Addr)) == site {
			return true
		}
	}
	return false
}

// exitForAdmin is the exit status for a failed admin request.
func exitForAdmin(err error) int {
	if errors.Is(err, admin.ErrNotRunning) {
		return exUnavailable
	}
	return exTempFail
}

// sendmailSMTP runs the -bs dialogue: each message goes through the
// admin socket like one given on the command line.
func sendmailSMTP(cfg *config.Config, c *admin.Client, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv := &sendmail.Server{
		Hostname:       cfg.Hostname,
		Domain:         cfg.Sendmail.Domain,
		MaxMessageSize: cfg.Limits.MaxMessageSize,
		MaxRecipients:  cfg.Limits.MaxRecipients,
		Submit: func(ctx context.Context, m *sendmail.Message) (string, error) {
			data, _, err := sendmail.QualifyHeader(m.Data, cfg.Sendmail.Domain)
			if err != nil {
				return "", smtp.NewError(554, "5.6.0", err.Error())
			}
			res, err := c.Submit(ctx, admin.SubmitRequest{From: m.From, Recipients: m.Recipients, Bare: m.Bare, Data: data})
			if err != nil {
				code, msg := submitFailure(err, c.SocketPath)
				if code == exDataErr {
					return "", smtp.NewError(554, "5.6.0", msg)
				}
				return "", smtp.NewError(451, "4.3.0", msg)
			}
			if res.Held {
				return res.ID + " (held for review: " + res.HoldReason + ")", nil
			}
			return res.ID, nil
		},
	}
	if err := srv.Serve(ctx, stdin, stdout); err != nil {
		fmt.Fprintf(stderr, "sendmail: %v\n", err)
		return exTempFail
	}
	return exOK
}
