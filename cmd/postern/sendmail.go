package main

// postern sendmail: the sendmail(8) command line that local programs
// (cron, mail(1), web applications) expect. It reads a message from
// standard input and hands it to the running server over the admin
// socket (POST /submit, internal/admin/submit.go), which spools it
// durably before it answers. Exit statuses are those of sysexits.h.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"

	"postern/internal/admin"
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

// sendmailOpts is the parsed sendmail command line.
type sendmailOpts struct {
	extractRcpts bool   // -t
	from         string // -f, -r; "" when not given
	fromSet      bool
	fullName     string // -F
	ignoreDots   bool   // -i, -oi
	config       string // -C, --config
	data         string // --data
	mode         sendmailMode
	flushFilter  sendmail.Flush // -qRSITE, -qSSITE, -qIID, -qINTERVAL
	rcpts        []string
}

// sendmailMode is what the command line asks for (sendmail_modes.go).
type sendmailMode int

// The modes of sendmail(8) that Postern honours.
const (
	modeDeliver sendmailMode = iota // -bm: queue the message on stdin (the default)
	modePrint                       // -bp, or run as mailq: list the queue
	modeSMTP                        // -bs: SMTP on stdin and stdout
	modeFlush                       // -q: try the deferred mail now
)

// parseSendmailArgs parses the sendmail(8) options Postern honours:
//
//	-t            recipients from To, Cc and Bcc (Bcc removed), with the arguments
//	-f ADDR, -r   envelope sender (-fADDR too; "<>" or "" is the null sender)
//	-F NAME       full name for the From field added when there is none
//	-i, -oi       a line with a single "." does not end the message
//	-bm           deliver mail (the default mode)
//	-bp           list the queue (as mailq)
//	-bs           SMTP on standard input and output
//	-q            try the deferred mail now; -qRSITE, -qSSITE, -qIID only the
//	              messages to or from SITE, or the one with queue id ID;
//	              -qINTERVAL (a daemon's period) is accepted and ignored
//	-C FILE       Postern's configuration file (also --config FILE)
//	--data DIR    the embedded default's data directory
//	-oX, -odX, -v, -m, -B T, -N D, -R R, -V E, -X F, -L T, -O O=V, -U, -G
//	              accepted and ignored
//
// "--" ends the options. Any other option is a usage error.
func parseSendmailArgs(args []string) (*sendmailOpts, error) {
	o := &sendmailOpts{}
	// arg returns an option's value: the rest of the word or the next word.
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			o.rcpts = append(o.rcpts, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			o.rcpts = append(o.rcpts, a)
			continue
		}
		value := func(name string) (string, error) {
			if len(a) > len(name) {
				return a[len(name):], nil
			}
			if i+1 >= len(args) {
				return "", usageError{fmt.Sprintf("sendmail: option %s needs a value", name)}
			}
			i++
			return args[i], nil
		}
		long := func(name string) (string, bool, error) {
			if a == name {
				if i+1 >= len(args) {
					return "", true, usageError{fmt.Sprintf("sendmail: option %s needs a value", name)}
				}
				i++
				return args[i], true, nil
			}
			if v, ok := strings.CutPrefix(a, name+"="); ok {
				return v, true, nil
			}
			return "", false, nil
		}
		var err error
		var ok bool
		switch {
		case a == "-t":
			o.extractRcpts = true
		case a == "-i" || a == "-oi":
			o.ignoreDots = true
		case a == "-bm" || a == "-v" || a == "-U" || a == "-G" || a == "-m" || a == "-Am" || a == "-Ac":
		case a == "-bp":
			o.mode = modePrint
		case a == "-bs":
			o.mode = modeSMTP
		case strings.HasPrefix(a, "-q"):
			o.mode = modeFlush
			if o.flushFilter, err = sendmail.ParseFlush(a[2:]); err != nil {
				err = usageError{"sendmail: " + err.Error()}
			}
		case strings.HasPrefix(a, "-f") || strings.HasPrefix(a, "-r"):
			o.from, err = value(a[:2])
			o.fromSet = true
		case strings.HasPrefix(a, "-F"):
			o.fullName, err = value("-F")
		case strings.HasPrefix(a, "-C"):
			o.config, err = value("-C")
		case strings.HasPrefix(a, "-o") || strings.HasPrefix(a, "-O"):
			if len(a) == 2 {
				_, err = value(a[:2])
			}
		case strings.HasPrefix(a, "-B") || strings.HasPrefix(a, "-N") || strings.HasPrefix(a, "-R") ||
			strings.HasPrefix(a, "-V") || strings.HasPrefix(a, "-X") || strings.HasPrefix(a, "-L"):
			_, err = value(a[:2])
		default:
			var v string
			if v, ok, err = long("--config"); ok {
				o.config = v
			} else if v, ok, err = long("--data"); ok {
				o.data = v
			} else if err == nil {
				return nil, usageError{fmt.Sprintf("sendmail: unsupported option %s", a)}
			}
		}
		if err != nil {
			return nil, err
		}
	}
	if o.config != "" && o.data != "" {
		return nil, usageError{"sendmail: --data and --config exclude each other"}
	}
	if o.from == "<>" {
		o.from = ""
	}
	o.from = strings.TrimSuffix(strings.TrimPrefix(o.from, "<"), ">")
	return o, nil
}

// sendmailConfig loads the configuration sendmail uses: -C/--config,
// or --data, or as every command finds it (configFlags.load).
func (c *cli) sendmailConfig(o *sendmailOpts) (*config.Config, error) {
	cf := configFlags{config: o.config, data: o.data, c: c}
	return cf.load()
}

// sendmailOptions documents the options parseSendmailArgs takes, for
// the usage and the manual page.
func sendmailOptions() []option {
	return []option{
		{"-t", "the recipients are those of the To, Cc and Bcc fields too; the Bcc fields are removed"},
		{"RCPT", "a bare name (root, www-data) is qualified with sendmail.domain; one that names no user or alias goes to the postmaster"},
		{"-f ADDR", "the envelope sender (also -r ADDR; '<>' is the null sender); default the configured postmaster"},
		{"-F NAME", "the full name in the From field added when the message has none"},
		{"-i", "a line holding a single period does not end the message (also -oi)"},
		{"-C FILE", "Postern's configuration file (also --config FILE)"},
		{"--data DIR", "use the embedded default, with its data in DIR"},
		{"-bm", "queue the message on stdin: the default mode"},
		{"-bp", "list the queue, as mailq (a link named mailq is postern queue list)"},
		{"-bs", "speak SMTP on stdin and stdout; bare names are qualified as on the command line"},
		{"-q", "try the deferred mail now; -qRSITE and -qSSITE only mail to or from SITE, -qIID one message; -qINTERVAL is ignored"},
		{"-oX, -v, -m, ...", "the options -o, -O, -v, -m, -B, -N, -R, -V, -X, -L, -U and -G are accepted and ignored; any other is a usage error"},
	}
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
		cmd, _ := lookup(commands(), []string{"sendmail"})
		writeUsage(c.stdout, cmd, nil)
		return exOK
	}
	o, err := parseSendmailArgs(args)
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
	switch o.mode { // sendmail_modes.go
	case modePrint:
		return sendmailPrint(ac, c.stdout, stderr, c.now())
	case modeFlush:
		return sendmailFlush(ac, o, stderr)
	case modeSMTP:
		return sendmailSMTP(cfg, ac, stdin, c.stdout, stderr)
	}
	domain := cfg.Sendmail.Domain
	sender := cfg.Postmaster // the default envelope sender: bounces reach a real mailbox
	if o.fromSet {
		sender = o.from
		if sendmail.IsBareName(sender) {
			sender += "@" + domain
		}
	}
	msg, err := sendmail.ReadMessage(stdin, o.ignoreDots, cfg.Limits.MaxMessageSize)
	if err != nil {
		return fail(exDataErr, "read message: %v", err)
	}
	msg, rcpts, bare, err := sendmail.Prepare(msg, sendmail.PrepareOptions{
		Recipients: o.rcpts, Extract: o.extractRcpts, FullName: o.fullName, Sender: sender, Domain: domain})
	if err != nil {
		return fail(exDataErr, "%v", err)
	}
	if len(rcpts) == 0 {
		return fail(exDataErr, "no recipients (name them as arguments, or use -t to read To, Cc and Bcc)")
	}
	res, err := ac.Submit(context.Background(), admin.SubmitRequest{From: sender, Recipients: rcpts, Bare: bare, Data: msg})
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
