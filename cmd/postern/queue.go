package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"postern/internal/admin"
	"postern/internal/smtp"
	"postern/internal/spool"
	"postern/internal/termsafe"
)

// notRunning is the error of a command that found no server on the
// admin socket.
func notRunning(sock string) error {
	return fmt.Errorf("postern is not running (no %s)", sock)
}

// queueOpts are the flags of the queue commands; each command declares
// those it takes (queueFlags).
type queueOpts struct {
	filter admin.Filter
	all    bool // --all
	yes    bool // --yes
	json   bool // list --json
	header bool // cat --header
}

// queueFlags is `postern queue VERB`: it asks the running server over
// its admin socket (DATA/admin.sock).
func queueFlags(verb string) func(*cli, *flag.FlagSet) func([]string) error {
	return func(c *cli, fs *flag.FlagSet) func([]string) error {
		var o queueOpts
		switch verb {
		case "list":
			fs.BoolVar(&o.json, "json", false, "print the messages as a JSON array, with every recipient's state")
			filterFlags(fs, &o.filter)
		case "cat":
			fs.BoolVar(&o.header, "header", false, "print the header section only")
		case "delete", "hold", "release", "retry":
			filterFlags(fs, &o.filter)
			fs.BoolVar(&o.all, "all", false, "every message in the queue")
			if verb != "retry" {
				fs.BoolVar(&o.yes, "yes", false, fmt.Sprintf("change more than %d messages without asking", confirmOver))
			}
		}
		cf := c.configFlags(fs)
		return func(pos []string) error { return runQueue(c, cf, verb, pos, &o) }
	}
}

// filterFlags declares the flags of an admin.Filter on fs.
func filterFlags(fs *flag.FlagSet, f *admin.Filter) {
	fs.StringVar(&f.From, "from", "", "only mail from this `SENDER`: an address, a domain, or <> for bounces")
	fs.StringVar(&f.To, "to", "", "only this recipient `ADDRESS`")
	fs.StringVar(&f.Domain, "domain", "", "only the recipients at this `DOMAIN`")
	fs.StringVar(&f.State, "state", "", "only the recipients in this `STATE`: pending, deferred, held, or active (being delivered now)")
}

// runQueue runs `postern queue VERB POS...`.
func runQueue(cl *cli, cf *configFlags, verb string, pos []string, o *queueOpts) error {
	for _, id := range pos {
		if !smtp.ValidID(id) {
			return usageError(fmt.Sprintf("queue %s: %q is not a queue id (letters and digits, as queue list shows them)", verb, id))
		}
	}
	if err := o.filter.Check(); err != nil {
		return usageError(fmt.Sprintf("queue %s: %v", verb, err))
	}
	switch verb {
	case "delete", "hold", "release", "retry":
		if err := checkSelection(verb, pos, o); err != nil {
			return err
		}
	}
	c, sock, err := cf.adminClient()
	if err != nil {
		return err
	}
	ctx := context.Background()
	stdout, now := cl.stdout, cl.now
	switch verb {
	case "list":
		msgs, err := c.ListFilter(ctx, o.filter)
		if err != nil {
			return queueError(err, sock, "")
		}
		if o.json {
			return printJSONList(stdout, msgs)
		}
		if len(msgs) == 0 && !o.filter.Empty() {
			fmt.Fprintln(stdout, "No message matches.")
			return nil
		}
		printList(stdout, msgs, now())
	case "show":
		d, err := c.Show(ctx, pos[0])
		if err != nil {
			return queueError(err, sock, pos[0])
		}
		printShow(stdout, d, now())
	case "cat":
		if !termsafe.IsTerminal(stdout) {
			if err := c.Cat(ctx, pos[0], o.header, stdout); err != nil {
				return queueError(err, sock, pos[0])
			}
			return nil
		}
		w := termsafe.NewWriter(stdout)
		if err := c.Cat(ctx, pos[0], o.header, w); err != nil {
			return queueError(err, sock, pos[0])
		}
		return w.Flush()
	case "flush":
		return runChange(cl, c, spool.OpRetry, nil, &queueOpts{all: true})
	case "delete":
		return runChange(cl, c, spool.OpDelete, pos, o)
	case "hold":
		return runChange(cl, c, spool.OpHold, pos, o)
	case "release":
		return runChange(cl, c, spool.OpRelease, pos, o)
	case "retry":
		return runChange(cl, c, spool.OpRetry, pos, o)
	}
	return nil
}

// queueError turns the admin client's errors into what the operator is
// told.
func queueError(err error, sock, id string) error {
	switch {
	case errors.Is(err, admin.ErrNotRunning):
		return fmt.Errorf("%w: the queue commands act through the running server, which owns the spool; start it first", notRunning(sock))
	case errors.Is(err, admin.ErrNotFound):
		return fmt.Errorf("queue: no message %s in the queue", id)
	case errors.Is(err, admin.ErrNotHeld):
		return fmt.Errorf("queue: message %s is not held", id)
	}
	return fmt.Errorf("queue: %w", err)
}

// printJSONList writes msgs as a JSON array ([] when empty).
func printJSONList(w io.Writer, msgs []admin.Message) error {
	if msgs == nil {
		msgs = []admin.Message{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(msgs)
}

// printList writes the queue as a table, one line per recipient, with
// the control characters of what senders and remote servers wrote shown
// (termsafe).
func printList(out io.Writer, msgs []admin.Message, now time.Time) {
	w := termsafe.NewWriter(out)
	defer w.Flush()
	if len(msgs) == 0 {
		fmt.Fprintln(w, "The queue is empty.")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tAGE\tSIZE\tFROM\tRECIPIENTS")
	rcpts := 0
	for _, m := range msgs {
		for i, r := range m.Recipients {
			if i == 0 {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t", m.ID, age(now.Sub(m.ReceivedAt)), size(m.Size), sender(m.From))
			} else {
				fmt.Fprint(tw, "\t\t\t\t")
			}
			fmt.Fprintf(tw, "%s %s\n", r.Addr, heldStatus(m, r, now))
			rcpts++
		}
	}
	tw.Flush()
	fmt.Fprintf(w, "%d %s, %d %s\n", len(msgs), plural(len(msgs), "message", "messages"),
		rcpts, plural(rcpts, "recipient", "recipients"))
}

// rcptDSN returns r's DSN parameters in the form RCPT carries them
// ("NOTIFY=SUCCESS ORCPT=rfc822;bob@example.org"), ORCPT as xtext so
// that a space or "=" in it cannot pass for another parameter; "" when
// none.
func rcptDSN(r admin.Recipient) string {
	var p []string
	if r.Notify != "" {
		p = append(p, "NOTIFY="+r.Notify)
	}
	if r.ORcpt != "" {
		p = append(p, "ORCPT="+smtp.EncodeORcpt(r.ORcpt))
	}
	return strings.Join(p, " ")
}

// printShow writes one message in detail, with the control characters
// of what the client, the sender and remote servers wrote shown
// (termsafe): the HELO name, the header, a hold reason, an error, the
// DSN parameters.
func printShow(out io.Writer, d *admin.MessageDetail, now time.Time) {
	w := termsafe.NewWriter(out)
	defer w.Flush()
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	fmt.Fprintf(tw, "ID:\t%s\n", d.ID)
	if d.Held {
		fmt.Fprintf(tw, "State:\theld for review (%s); postern queue release %s delivers it\n", orDash(d.HoldReason), d.ID)
	}
	if d.Done {
		fmt.Fprintf(tw, "State:\tdone (no recipient left; removed from the spool soon)\n")
	}
	fmt.Fprintf(tw, "From:\t%s\n", sender(d.From))
	fmt.Fprintf(tw, "Received:\t%s (%s ago)\n", d.ReceivedAt.UTC().Format(time.RFC3339), age(now.Sub(d.ReceivedAt)))
	var via []string
	if d.Listener != "" {
		via = append(via, "listener "+d.Listener)
	}
	if d.Remote != "" {
		via = append(via, "from "+d.Remote)
	}
	if d.Helo != "" {
		via = append(via, "helo "+d.Helo)
	}
	if d.AuthUser != "" {
		via = append(via, "user "+d.AuthUser)
	}
	if len(via) > 0 {
		fmt.Fprintf(tw, "Via:\t%s\n", strings.Join(via, ", "))
	}
	fmt.Fprintf(tw, "Size:\t%d bytes\n", d.Size)
	params := []string{"BODY=" + d.Body}
	if d.SMTPUTF8 {
		params = append(params, "SMTPUTF8")
	}
	if d.RequireTLS {
		params = append(params, "REQUIRETLS")
	}
	// The DSN parameters (RFC 3461 §4.3, §4.4), ENVID as xtext, as MAIL
	// carries it: a sender's text, whose spaces would otherwise read as
	// more parameters ("ENVID=id RET=HDRS").
	if d.Ret != "" {
		params = append(params, "RET="+d.Ret)
	}
	if d.EnvID != "" {
		params = append(params, "ENVID="+smtp.XtextEncode(d.EnvID))
	}
	fmt.Fprintf(tw, "Parameters:\t%s\n", strings.Join(params, " "))
	tw.Flush()
	fmt.Fprintln(w, "Recipients:")
	for _, r := range d.Recipients {
		fmt.Fprintf(w, "  %s %s\n", r.Addr, rcptStatus(r, now))
		if r.Code != "" || r.RemoteMTA != "" {
			fmt.Fprintf(w, "      status %s", orDash(r.Code))
			if r.RemoteMTA != "" {
				fmt.Fprintf(w, ", remote %s", r.RemoteMTA)
			}
			fmt.Fprintln(w)
		}
		if r.LastError != "" {
			fmt.Fprintf(w, "      last error: %s\n", r.LastError)
		}
		if r.Warned {
			fmt.Fprintln(w, "      delay warning sent")
		}
		if dsn := rcptDSN(r); dsn != "" {
			fmt.Fprintf(w, "      %s\n", dsn)
		}
	}
	fmt.Fprintln(w, "Headers:")
	for _, l := range strings.SplitAfter(strings.TrimSuffix(d.Headers, "\r\n"), "\r\n") {
		fmt.Fprintf(w, "  %s\n", strings.TrimSuffix(l, "\r\n"))
	}
}

// heldStatus is rcptStatus, with the reason of a held recipient's hold.
func heldStatus(m admin.Message, r admin.Recipient, now time.Time) string {
	if r.Status == "held" && m.HoldReason != "" {
		return "(held: " + m.HoldReason + ")"
	}
	return rcptStatus(r, now)
}

// rcptStatus describes a recipient's state in a few words.
func rcptStatus(r admin.Recipient, now time.Time) string {
	s := r.Status
	switch {
	case r.Active:
		s = "being delivered now"
	case r.Status == "deferred" && !r.NextAttempt.IsZero():
		if d := r.NextAttempt.Sub(now); d > 0 {
			s += ", next in " + age(d)
		} else {
			s += ", due now"
		}
	case r.Status == "pending":
		return s
	}
	if r.Attempts > 0 {
		s += fmt.Sprintf(", %d %s", r.Attempts, plural(r.Attempts, "attempt", "attempts"))
	}
	return "(" + s + ")"
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func sender(from string) string {
	if from == "" {
		return "<>"
	}
	return from
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// age formats a duration in at most two units: 45s, 12m, 3h05m, 2d04h.
func age(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	}
	return fmt.Sprintf("%dd%02dh", int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour))
}

// size formats a byte count: 512B, 1.5K, 12M.
func size(n int64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%dB", n)
	case n < 10<<10:
		return fmt.Sprintf("%.1fK", float64(n)/(1<<10))
	case n < 1<<20:
		return fmt.Sprintf("%dK", n>>10)
	case n < 10<<20:
		return fmt.Sprintf("%.1fM", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%dM", n>>20)
}
