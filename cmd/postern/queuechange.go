package main

// The queue changes of an incident: `postern queue delete|hold|release|
// retry` by id, by filter or --all, and `queue flush`. The server
// decides what a selection picks (internal/admin/change.go); here are
// the confirmation and the words.
//
// A change of more than confirmOver messages is confirmed first, unless
// --yes: a dry run counts what would change (admin.Client.ChangeAsked,
// which then changes only what was counted); on a terminal the operator
// is asked; without one the command refuses, since a script that meant
// it says --yes. Retry and flush never ask: they only bring forward
// what the queue does anyway, as postqueue -f.

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"slices"
	"strings"

	"postern/internal/admin"
	"postern/internal/spool"
	"postern/internal/termsafe"
)

// confirmOver is the number of messages above which a change asks first.
const confirmOver = 5

// changeWords are how a change is told: its past participle, what it
// applies to, and what follows.
var changeWords = map[spool.Op]struct{ done, applies, then string }{
	spool.OpDelete:  {"Deleted", "undelivered", "nothing more is delivered to them, and no bounce is sent"},
	spool.OpHold:    {"Held", "pending or deferred", "nothing is tried until postern queue release"},
	spool.OpRelease: {"Released", "held", "delivered now"},
	spool.OpRetry:   {"Retrying", "deferred", ""},
}

// runChange makes the change op to the messages ids and o name, after
// the confirmation it needs (admin.Client.ChangeAsked), and prints the
// count.
func runChange(cl *cli, c *admin.Client, op spool.Op, ids []string, o *queueOpts) error {
	sel := admin.Selection{IDs: ids, Filter: o.filter, All: o.all}
	ctx := context.Background()
	var res *admin.ChangeResult
	var err, refused error
	if op == spool.OpRetry || o.yes {
		res, err = c.Change(ctx, op, sel)
	} else {
		res, err = c.ChangeAsked(ctx, op, sel, func(dry *admin.ChangeResult) error {
			if dry.Messages > confirmOver {
				refused = cl.confirm(op, dry)
			}
			return refused
		})
	}
	if refused != nil {
		return refused
	}
	if err != nil {
		return queueError(err, c.SocketPath, "")
	}
	return reportChange(cl, op, ids, o, res)
}

// checkSelection reports a usage error when the ids and flags of
// `queue VERB` do not name messages the one way they must.
func checkSelection(verb string, ids []string, o *queueOpts) error {
	if err := (admin.Selection{IDs: ids, Filter: o.filter, All: o.all}).Check(); err != nil {
		return usageError(fmt.Sprintf("queue %s: %v", verb, err))
	}
	return nil
}

// confirm asks the operator whether to make the change res counts, on
// the terminal of stdin; without one it refuses.
func (cl *cli) confirm(op spool.Op, res *admin.ChangeResult) error {
	what := fmt.Sprintf("%s (%s)", nCount(res.Messages, "message"), nCount(res.Recipients, "recipient"))
	verb := strings.ToLower(changeWords[op].done)
	f, ok := cl.stdin.(*os.File)
	if !ok || !termsafe.IsTerminal(f) {
		return fmt.Errorf("queue %v: %s would be %s, more than %d: no terminal to confirm on; "+
			"check them with postern queue list and the same filter, then run this again with --yes", op, what, verb, confirmOver)
	}
	fmt.Fprintf(cl.stderr, "%s %s? [y/N] ", strings.ToUpper(op.String()[:1])+op.String()[1:], what)
	line, err := bufio.NewReader(f).ReadString('\n')
	if err != nil && line == "" {
		return fmt.Errorf("queue %v: no answer: nothing changed", op)
	}
	if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
		return fmt.Errorf("queue %v: not confirmed: nothing changed", op)
	}
	return nil
}

// reportChange prints what the change did: the count on stdout, the
// ids named but gone or left as they were on stderr. A change by id or
// by filter that changed nothing is an error (exit status 1), so that a
// script notices; --all on a queue with nothing to change is not.
func reportChange(cl *cli, op spool.Op, ids []string, o *queueOpts, res *admin.ChangeResult) error {
	w := changeWords[op]
	if res.Messages == 0 && !o.all {
		if len(ids) == 1 && o.filter.Empty() {
			switch {
			case len(res.Missing) > 0:
				return queueError(admin.ErrNotFound, "", ids[0])
			case op == spool.OpRelease:
				return queueError(admin.ErrNotHeld, "", ids[0])
			}
			return fmt.Errorf("queue: message %s has no %s recipient: nothing to %v", ids[0], w.applies, op)
		}
		return fmt.Errorf("queue %v: nothing to %v: no %s recipient matches %s", op, op, w.applies, selectionText(ids, o.filter))
	}
	for _, id := range dedupIDs(res.Missing) {
		fmt.Fprintf(cl.stderr, "postern: queue %v: %s: not in the queue (delivered, deleted, or never there)\n", op, id)
	}
	for _, id := range dedupIDs(res.Unchanged) {
		fmt.Fprintf(cl.stderr, "postern: queue %v: %s: no %s recipient%s: left as it was\n", op, id, w.applies,
			map[bool]string{true: "", false: " that the filter picks"}[o.filter.Empty()])
	}
	switch {
	case res.Messages == 0 && op == spool.OpRetry:
		fmt.Fprintln(cl.stdout, "Nothing to retry: no deferred recipient.")
		return nil
	case res.Messages == 0:
		fmt.Fprintf(cl.stdout, "%s 0 messages.\n", w.done)
		return nil
	}
	what := fmt.Sprintf("%s (%s)", nCount(res.Messages, "message"), nCount(res.Recipients, "recipient"))
	if op == spool.OpRetry {
		fmt.Fprintf(cl.stdout, "%s %s now.\n", w.done, what)
	} else {
		fmt.Fprintf(cl.stdout, "%s %s: %s.\n", w.done, what, w.then)
	}
	if res.Active > 0 {
		fmt.Fprintf(cl.stdout, "%s being delivered at that moment: %s on, and may still deliver it.\n",
			nCount(res.Active, "recipient was"), plural(res.Active, "its attempt goes", "their attempts go"))
	}
	return nil
}

// nCount is "1 message", "3 messages"; a noun of two words pluralises
// both ("1 recipient was", "2 recipients were").
func nCount(n int, noun string) string {
	if n != 1 {
		noun = strings.NewReplacer("recipient was", "recipients were", "message", "messages", "recipient", "recipients").Replace(noun)
	}
	return fmt.Sprintf("%d %s", n, noun)
}

// selectionText is a selection as the command line gave it, for a
// message: "--domain example.com", "among ID ID".
func selectionText(ids []string, f admin.Filter) string {
	var parts []string
	for _, p := range [][2]string{{"--from", f.From}, {"--to", f.To}, {"--domain", f.Domain}, {"--state", f.State}} {
		if p[1] != "" {
			parts = append(parts, p[0]+" "+p[1])
		}
	}
	if len(ids) > 0 {
		parts = append(parts, "among "+strings.Join(ids, " "))
	}
	return strings.Join(parts, " ")
}

// dedupIDs returns ids without repeats, in their order.
func dedupIDs(ids []string) []string {
	var out []string
	for _, id := range ids {
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}
