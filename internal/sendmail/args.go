package sendmail

// The sendmail(8) command line that local programs (cron, mail(1), web
// applications) expect: its options and modes, as Postern honours them.

import (
	"fmt"
	"strings"

	"postern/internal/smtp"
)

// Args is a parsed sendmail command line.
type Args struct {
	Extract    bool   // -t: the recipients of To, Cc and Bcc too
	From       string // -f, -r; "" when not given, or the null sender
	FromSet    bool   // -f or -r was given
	FullName   string // -F
	IgnoreDots bool   // -i, -oi
	Config     string // -C, --config
	Data       string // --data
	Mode       Mode
	Flush      Flush // -qRSITE, -qSSITE, -qIID, -qINTERVAL
	Recipients []string
	// The DSN parameters (RFC 3461) the message gets, as an SMTP
	// client's MAIL and RCPT would give them: -N (every recipient's
	// NOTIFY; zero when not given), -R (RET, "FULL" or "HDRS") and -V
	// (ENVID, not xtext-encoded).
	Notify smtp.Notify
	Ret    string
	EnvID  string
}

// Mode is what a sendmail command line asks for.
type Mode int

// The modes of sendmail(8) that Postern honours.
const (
	ModeDeliver Mode = iota // -bm: queue the message on stdin (the default)
	ModePrint               // -bp, or run as mailq: list the queue
	ModeSMTP                // -bs: SMTP on stdin and stdout
	ModeFlush               // -q: try the deferred mail now
)

// ParseArgs parses the sendmail(8) options Postern honours:
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
//	-N DSN        NOTIFY for every recipient (RFC 3461 §4.1): never, or a
//	              comma list of success, delay and failure
//	-R RET        RET (RFC 3461 §4.3): full or hdrs
//	-V ENVID      ENVID (RFC 3461 §4.4): printable ASCII, at most 100
//	              characters as xtext
//	-C FILE       Postern's configuration file (also --config FILE)
//	--data DIR    the embedded default's data directory
//	-oX, -odX, -v, -m, -B T, -X F, -L T, -O O=V, -U, -G
//	              accepted and ignored
//
// "--" ends the options. Any other option is an error: every error it
// returns is a mistake in the command line.
func ParseArgs(args []string) (*Args, error) {
	o := &Args{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			o.Recipients = append(o.Recipients, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			o.Recipients = append(o.Recipients, a)
			continue
		}
		// value returns an option's value: the rest of the word or the next word.
		value := func(name string) (string, error) {
			if len(a) > len(name) {
				return a[len(name):], nil
			}
			if i+1 >= len(args) {
				return "", fmt.Errorf("sendmail: option %s needs a value", name)
			}
			i++
			return args[i], nil
		}
		long := func(name string) (string, bool, error) {
			if a == name {
				if i+1 >= len(args) {
					return "", true, fmt.Errorf("sendmail: option %s needs a value", name)
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
			o.Extract = true
		case a == "-i" || a == "-oi":
			o.IgnoreDots = true
		case a == "-bm" || a == "-v" || a == "-U" || a == "-G" || a == "-m" || a == "-Am" || a == "-Ac":
		case a == "-bp":
			o.Mode = ModePrint
		case a == "-bs":
			o.Mode = ModeSMTP
		case strings.HasPrefix(a, "-q"):
			o.Mode = ModeFlush
			if o.Flush, err = ParseFlush(a[2:]); err != nil {
				err = fmt.Errorf("sendmail: %w", err)
			}
		case strings.HasPrefix(a, "-f") || strings.HasPrefix(a, "-r"):
			o.From, err = value(a[:2])
			o.FromSet = true
		case strings.HasPrefix(a, "-F"):
			o.FullName, err = value("-F")
		case strings.HasPrefix(a, "-C"):
			o.Config, err = value("-C")
		case strings.HasPrefix(a, "-o") || strings.HasPrefix(a, "-O"):
			if len(a) == 2 {
				_, err = value(a[:2])
			}
		case strings.HasPrefix(a, "-N"):
			var v string
			if v, err = value("-N"); err == nil {
				o.Notify, err = parseNotify(v)
			}
		case strings.HasPrefix(a, "-R"):
			var v string
			if v, err = value("-R"); err == nil {
				o.Ret, err = parseRet(v)
			}
		case strings.HasPrefix(a, "-V"):
			var v string
			if v, err = value("-V"); err == nil {
				o.EnvID, err = parseEnvID(v)
			}
		case strings.HasPrefix(a, "-B") || strings.HasPrefix(a, "-X") || strings.HasPrefix(a, "-L"):
			_, err = value(a[:2])
		default:
			var v string
			if v, ok, err = long("--config"); ok {
				o.Config = v
			} else if v, ok, err = long("--data"); ok {
				o.Data = v
			} else if err == nil {
				return nil, fmt.Errorf("sendmail: unsupported option %s", a)
			}
		}
		if err != nil {
			return nil, err
		}
	}
	if o.Config != "" && o.Data != "" {
		return nil, fmt.Errorf("sendmail: --data and --config exclude each other")
	}
	// One pair of angle brackets around the sender is allowed, as in
	// "-f <>" for the null sender; what is left must hold none.
	o.From = strings.TrimSuffix(strings.TrimPrefix(o.From, "<"), ">")
	if strings.ContainsAny(o.From, "<>") {
		return nil, fmt.Errorf("sendmail: malformed sender address %q", o.From)
	}
	return o, nil
}

// parseNotify parses -N's value: never, or a comma list of success,
// delay and failure, each at most once (RFC 3461 §4.1's NOTIFY, in any
// case).
func parseNotify(v string) (smtp.Notify, error) {
	n, err := smtp.ParseNotify(v)
	if err != nil {
		return 0, fmt.Errorf("sendmail: -N %q: want never, or a comma list of success, delay and failure", v)
	}
	return n, nil
}

// parseRet parses -R's value: full or hdrs (RFC 3461 §4.3's RET).
func parseRet(v string) (string, error) {
	r, err := smtp.ParseRet(v)
	if err != nil {
		return "", fmt.Errorf("sendmail: -R %q: want full or hdrs", v)
	}
	return r, nil
}

// parseEnvID checks -V's value: an ENVID as an SMTP client could send
// it (RFC 3461 §4.4), printable ASCII of at most 100 characters once
// encoded as xtext.
func parseEnvID(v string) (string, error) {
	if _, err := smtp.ParseEnvID(smtp.XtextEncode(v)); err != nil {
		return "", fmt.Errorf("sendmail: -V %q: want printable ASCII, at most %d characters as xtext", v, smtp.MaxEnvID)
	}
	return v, nil
}

// Option documents an option ParseArgs takes, for a usage and a manual
// page.
type Option struct{ Name, Usage string }

// Options documents the options ParseArgs takes.
func Options() []Option {
	return []Option{
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
		{"-N DSN", "ask for delivery status notifications: never, or a comma list of success, delay and failure (NOTIFY, RFC 3461)"},
		{"-R full|hdrs", "a failure notice returns the whole message or its header section (RET)"},
		{"-V ENVID", "an id of yours (printable ASCII), returned in the notices as Original-Envelope-Id (ENVID)"},
		{"-oX, -v, -m, ...", "the options -o, -O, -v, -m, -B, -X, -L, -U and -G are accepted and ignored; any other is a usage error"},
	}
}
