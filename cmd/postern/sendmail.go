package main

// postern sendmail: the sendmail(8) command line that local programs
// (cron, mail(1), web applications) expect, parsed by internal/sendmail
// (sendmail.ParseArgs). It reads a message from
// standard input and hands it to the running server over the admin
// socket (POST /submit, internal/admin/submit.go), which spools it
// durably before it answers. Exit statuses are those of sysexits.h.

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"postern/internal/admin"
	cmdline "postern/internal/cli"
	"postern/internal/config"
	"postern/internal/sendmail"
)

// Exit statuses of sysexits.h that sendmail uses.
const (
	exOK          = 0
	exUsage       = 64 // EX_USAGE: a bad command line
	exDataErr     = 65 // EX_DATAERR: a bad message or address, no recipients
	exUnavailable = 69 // EX_UNAVAILABLE: the server is not running
	exSoftware    = 70 // EX_SOFTWARE: an internal error
	exTempFail    = 75 // EX_TEMPFAIL: try again later
	exNoPerm      = 77 // EX_NOPERM: the socket is not ours to use
	exConfig      = 78 // EX_CONFIG: the configuration does not load
)

// sendmailConfig loads the configuration sendmail uses: -C/--config,
// or --data, or as every command finds it (configFlags.load).
func (c *cli) sendmailConfig(o *sendmail.Args) (*config.Config, error) {
	cf := configFlags{config: o.Config, data: o.Data, c: c}
	return cf.load()
}

// sendmailOptions documents the options sendmail.ParseArgs takes, for
// the usage and the manual page.
func sendmailOptions() []cmdline.Option {
	var out []cmdline.Option
	for _, o := range sendmail.Options() {
		out = append(out, cmdline.Option(o))
	}
	return out
}

// sendmail runs `postern sendmail` (or a link named sendmail) and
// returns its exit status.
func (c *cli) sendmail(args []string) int {
	stdin, stderr := c.stdin, c.stderr
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "sendmail: "+format+"\n", a...)
		return code
	}
	if len(args) == 1 && (args[0] == "--help" || args[0] == "-h") {
		p := c.program()
		cmd, _ := cmdline.Lookup(p.Commands, []string{"sendmail"})
		p.WriteUsage(c.stdout, cmd)
		return exOK
	}
	o, err := sendmail.ParseArgs(args)
	if err != nil {
		fmt.Fprintln(stderr, "postern:", err)
		fmt.Fprintln(stderr, "Run 'postern sendmail --help' for its usage.")
		return exUsage
	}
	cfg, err := c.sendmailConfig(o)
	if err != nil {
		return fail(exConfig, "%v", err)
	}
	ac := &admin.Client{SocketPath: cfg.AdminSocket()}
	switch o.Mode { // sendmail_modes.go
	case sendmail.ModePrint:
		return sendmailPrint(ac, c.stdout, stderr, c.now())
	case sendmail.ModeFlush:
		return sendmailFlush(ac, o, stderr)
	case sendmail.ModeSMTP:
		return sendmailSMTP(cfg, ac, stdin, c.stdout, stderr)
	}
	domain := cfg.Sendmail.Domain
	sender := cfg.Postmaster // the default envelope sender: bounces reach a real mailbox
	if o.FromSet {
		sender = o.From
		if sendmail.IsBareName(sender) {
			sender += "@" + domain
		}
	}
	msg, err := sendmail.ReadMessage(stdin, o.IgnoreDots, cfg.Limits.MaxMessageSize)
	if err != nil {
		return fail(exDataErr, "read message: %v", err)
	}
	msg, rcpts, bare, err := sendmail.Prepare(msg, sendmail.PrepareOptions{
		Recipients: o.Recipients, Extract: o.Extract, FullName: o.FullName, Sender: sender, Domain: domain})
	if err != nil {
		return fail(exDataErr, "%v", err)
	}
	if len(rcpts) == 0 {
		return fail(exDataErr, "no recipients (name them as arguments, or use -t to read To, Cc and Bcc)")
	}
	res, err := ac.Submit(context.Background(), admin.SubmitRequest{From: sender, Recipients: rcpts, Bare: bare, Data: msg,
		Notify: o.Notify.String(), Ret: o.Ret, EnvID: o.EnvID})
	if err == nil && res.Held {
		// Queued, so exit 0; but the caller's operator should know.
		fmt.Fprintf(stderr, "sendmail: message %s queued but held for review (%s): it is delivered once an operator runs postern queue release %s\n",
			res.ID, res.HoldReason, res.ID)
	}
	if err != nil {
		code, msg := submitFailure(err, ac.SocketPath)
		return fail(code, "%s", msg)
	}
	return exOK // sendmail is silent on success
}

// submitFailure returns the exit status (sysexits.h) and the message for
// a failed local submission.
func submitFailure(err error, sock string) (int, string) {
	switch {
	case errors.Is(err, admin.ErrSendLimit):
		return exTempFail, err.Error() + "; the message was not queued"
	case errors.Is(err, admin.ErrNotRunning):
		return exUnavailable, "postern is not running (no server on " + sock + ")"
	case errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM):
		return exNoPerm, err.Error() + " (only root and the user postern runs as may submit)"
	case errors.Is(err, admin.ErrRefused):
		return exDataErr, err.Error()
	case errors.Is(err, admin.ErrLocalOff):
		return exUnavailable, err.Error()
	}
	return exTempFail, err.Error()
}
