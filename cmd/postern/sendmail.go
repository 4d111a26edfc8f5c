package main

// postern sendmail: the sendmail(8) command line that local programs
// (cron, mail(1), web applications) expect. It reads a message from
// standard input and hands it to the running server over the admin
// socket (POST /submit, internal/admin/submit.go), which spools it
// durably before it answers. Exit statuses are those of sysexits.h.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"os"
	"strings"
	"syscall"

	"postern/internal/admin"
	"postern/internal/config"
	"postern/internal/smtp"
	"postern/internal/smtpd"
	"postern/internal/spool"
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

// defaultSendmailConfig is the configuration sendmail reads when neither
// -C, --config, --data nor $POSTERN_CONFIG names one and it exists.
const defaultSendmailConfig = "/etc/postern/postern.toml"

// sendmailOpts is the parsed sendmail command line.
type sendmailOpts struct {
	extractRcpts bool   // -t
	from         string // -f, -r; "" when not given
	fromSet      bool
	fullName     string // -F
	ignoreDots   bool   // -i, -oi
	config       string // -C, --config
	data         string // --data
	rcpts        []string
}

// parseSendmailArgs parses the sendmail(8) options Postern honours:
//
//	-t            recipients from To, Cc and Bcc (Bcc removed), with the arguments
//	-f ADDR, -r   envelope sender (-fADDR too; "<>" or "" is the null sender)
//	-F NAME       full name for the From field added when there is none
//	-i, -oi       a line with a single "." does not end the message
//	-bm           deliver mail (the default and only mode)
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

// readMessage reads a message from r and returns it with CRLF line
// endings: a bare LF or a bare CR ends a line too. Unless ignoreDots, a
// line holding a single "." ends the message (and is not part of it).
// More than max bytes is an error.
func readMessage(r io.Reader, ignoreDots bool, max int64) ([]byte, error) {
	in, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(in)) > max {
		return nil, fmt.Errorf("message bigger than %d bytes", max)
	}
	out := make([]byte, 0, len(in)+len(in)/40+2)
	for len(in) > 0 {
		var line []byte
		i := bytes.IndexAny(in, "\r\n")
		if i < 0 {
			line, in = in, nil
		} else {
			line = in[:i]
			if in[i] == '\r' && i+1 < len(in) && in[i+1] == '\n' {
				in = in[i+2:]
			} else {
				in = in[i+1:]
			}
		}
		if !ignoreDots && string(line) == "." {
			break
		}
		out = append(out, line...)
		out = append(out, "\r\n"...)
	}
	return out, nil
}

// prepareMessage applies -t and -F to msg (CRLF lines): with extract, the
// recipients of To, Cc and Bcc are added to rcpts and the Bcc fields are
// removed; a From field is added when there is none. It returns the
// message and the recipients.
func prepareMessage(msg []byte, o *sendmailOpts, sender string) ([]byte, []string, error) {
	end := smtp.HeaderEnd(msg)
	hdr, body := msg[:end], msg[end:]
	if len(msg) > 0 && !isFieldLine(msg) {
		// No header section at all: the whole input is the body.
		hdr, body = nil, append([]byte("\r\n"), msg...)
	}
	rcpts := append([]string(nil), o.rcpts...)
	if o.extractRcpts {
		for _, name := range []string{"To", "Cc", "Bcc"} {
			for _, v := range smtp.HeaderValues(hdr, name) {
				if strings.TrimSpace(v) == "" {
					continue
				}
				list, err := mail.ParseAddressList(v)
				if err != nil {
					return nil, nil, fmt.Errorf("%s: %w", name, err)
				}
				for _, a := range list {
					rcpts = append(rcpts, a.Address)
				}
			}
		}
		hdr = removeField(hdr, "Bcc")
	}
	if len(smtp.HeaderValues(hdr, "From")) == 0 && sender != "" {
		from := (&mail.Address{Name: o.fullName, Address: sender}).String()
		if o.fullName == "" {
			from = sender
		} else if !isASCII(o.fullName) {
			from = mime.QEncoding.Encode("utf-8", o.fullName) + " <" + sender + ">"
		}
		hdr = append([]byte("From: "+from+"\r\n"), hdr...)
	}
	out := make([]byte, 0, len(hdr)+len(body))
	return append(append(out, hdr...), body...), rcpts, nil
}

// removeField removes every field named name (with its folded lines)
// from the header section hdr.
func removeField(hdr []byte, name string) []byte {
	out := make([]byte, 0, len(hdr))
	skip := false
	for len(hdr) > 0 {
		i := bytes.Index(hdr, []byte("\r\n"))
		line := hdr
		if i >= 0 {
			line = hdr[:i+2]
		}
		hdr = hdr[len(line):]
		if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
			if !skip {
				out = append(out, line...)
			}
			continue
		}
		n, _, _ := bytes.Cut(line, []byte(":"))
		skip = strings.EqualFold(strings.TrimSpace(string(n)), name)
		if !skip {
			out = append(out, line...)
		}
	}
	return out
}

// isFieldLine reports whether msg starts with a header field: a name of
// printable ASCII without ':' and then ':' (RFC 5322 §2.2).
func isFieldLine(msg []byte) bool {
	for i, c := range msg {
		switch {
		case c == ':':
			return i > 0
		case c < 33 || c > 126:
			return false
		}
	}
	return false
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// sendmailConfig loads the configuration sendmail uses: -C/--config,
// --data, $POSTERN_CONFIG, /etc/postern/postern.toml when it exists, or
// the embedded default in ./postern-data.
func sendmailConfig(o *sendmailOpts) (*config.Config, error) {
	cf := configFlags{config: o.config, data: o.data}
	if cf.config == "" && cf.data == "" {
		if env := os.Getenv("POSTERN_CONFIG"); env != "" {
			cf.config = env
		} else if _, err := os.Stat(defaultSendmailConfig); err == nil {
			cf.config = defaultSendmailConfig
		}
	}
	return cf.load()
}

// cmdSendmail runs `postern sendmail` and returns its exit status.
func cmdSendmail(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(stderr, "sendmail: "+format+"\n", a...)
		return code
	}
	o, err := parseSendmailArgs(args)
	if err != nil {
		fmt.Fprintln(stderr, "postern:", err)
		fmt.Fprintln(stderr, "usage: postern sendmail [-t] [-i] [-f sender] [-F name] [-C config] [recipient ...]")
		return exUsage
	}
	cfg, err := sendmailConfig(o)
	if err != nil {
		return fail(exConfig, "%v", err)
	}
	sender := cfg.Postmaster // the default envelope sender: bounces reach a real mailbox
	if o.fromSet {
		sender = o.from
	}
	msg, err := readMessage(stdin, o.ignoreDots, cfg.Limits.MaxMessageSize)
	if err != nil {
		return fail(exDataErr, "read message: %v", err)
	}
	msg, rcpts, err := prepareMessage(msg, o, sender)
	if err != nil {
		return fail(exDataErr, "%v", err)
	}
	if len(rcpts) == 0 {
		return fail(exDataErr, "no recipients (name them as arguments, or use -t to read To, Cc and Bcc)")
	}
	c := &admin.Client{SocketPath: cfg.AdminSocket()}
	res, err := c.Submit(context.Background(), admin.SubmitRequest{From: sender, Recipients: rcpts, Data: msg})
	switch {
	case err == nil && res.Held:
		// Queued, so exit 0; but the caller's operator should know.
		fmt.Fprintf(stderr, "sendmail: message %s queued but held for review (%s): it is delivered once an operator runs postern queue release %s\n",
			res.ID, res.HoldReason, res.ID)
		return exOK
	case err == nil:
		return exOK // sendmail is silent on success
	case errors.Is(err, admin.ErrSendLimit):
		return fail(exTempFail, "%v; the message was not queued", err)
	case errors.Is(err, admin.ErrNotRunning):
		return fail(exUnavailable, "postern is not running (no server on %s)", c.SocketPath)
	case errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM):
		return fail(exNoPerm, "%v (only root and the user postern runs as may submit)", err)
	case errors.Is(err, admin.ErrRefused):
		return fail(exDataErr, "%v", err)
	case errors.Is(err, admin.ErrLocalOff):
		return fail(exUnavailable, "%v", err)
	}
	return fail(exTempFail, "%v", err)
}

// localSubmitter is the server side of `postern sendmail` (admin.Submitter):
// it DKIM-signs with the submission listeners' signer, when there is one,
// and puts the message in the spool.
type localSubmitter struct {
	spool *spool.Spool
	sign  smtpd.Filter // nil: no signing
}

// Submit implements admin.Submitter.
func (l localSubmitter) Submit(ctx context.Context, env *smtp.Envelope, msg *smtp.Message) error {
	if l.sign != nil {
		// Only root and Postern's own user reach the socket: they are
		// trusted to send as any address, as a local MTA trusts them.
		res, err := l.sign.Filter(ctx, env, msg)
		if err != nil {
			return err
		}
		if len(res.Prepend) > 0 {
			msg = &smtp.Message{Header: append(append([]byte(nil), res.Prepend...), msg.Header...), Body: msg.Body}
		}
	}
	// A large body goes into a blob of its own, written in this
	// goroutine: the spool's writer never copies it.
	return l.spool.PutMessage(ctx, env, msg)
}

// localSubmit configures the admin socket's local submission; limiter
// applies [send_limits] to it, under the caller's Unix user
// (admin.LocalSender: "local:www-data"), as to SMTP users.
func localSubmit(cfg *config.Config, spool *spool.Spool, sign smtpd.Filter, limiter admin.SendLimiter) *admin.LocalSubmit {
	return &admin.LocalSubmit{
		Submitter:      localSubmitter{spool: spool, sign: sign},
		Limiter:        limiter,
		Hostname:       cfg.Hostname,
		MaxMessageSize: cfg.Limits.MaxMessageSize,
		MaxRecipients:  cfg.Limits.MaxRecipients,
	}
}
