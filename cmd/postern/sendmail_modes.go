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

	"postern/internal/admin"
	"postern/internal/config"
	"postern/internal/sendmail"
	"postern/internal/smtp"
)

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
func sendmailFlush(c *admin.Client, o *sendmail.Args, stderr io.Writer) int {
	ctx := context.Background()
	msgs, err := c.List(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "sendmail: -q: %v\n", queueError(err, c.SocketPath, ""))
		return exitForAdmin(err)
	}
	for _, m := range msgs {
		var deferred []string
		for _, r := range m.Recipients {
			if r.Status == "deferred" {
				deferred = append(deferred, r.Addr)
			}
		}
		if !o.Flush.Selects(m.ID, m.From, m.Held, deferred) {
			continue
		}
		if err := c.Retry(ctx, m.ID); err != nil && !errors.Is(err, admin.ErrNotFound) { // delivered meanwhile
			fmt.Fprintf(stderr, "sendmail: -q: %v\n", queueError(err, c.SocketPath, m.ID))
			return exitForAdmin(err)
		}
	}
	return exOK
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
