package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"text/tabwriter"
	"time"

	"postern/internal/admin"
)

// banFlags is `postern ban VERB`: it asks the running server over its
// admin socket, so the ban lands in the store the server uses (memory,
// or Redis shared by every node).
func banFlags(verb string) func(*cli, *flag.FlagSet) func([]string) error {
	return func(c *cli, fs *flag.FlagSet) func([]string) error {
		cf := c.configFlags(fs)
		o := banOpts{dur: admin.DefaultBanFor}
		if verb == "add" {
			fs.Var(banDuration{&o.dur}, "for", "how long the ban lasts, as a `DURATION`: 90m, 48h")
			fs.StringVar(&o.reason, "reason", "", "why, as `TEXT` shown by ban list")
			fs.BoolVar(&o.force, "force", false, "ban the whole range of a prefix written with host bits (10.1.2.3/8)")
		}
		return func(pos []string) error { return runBan(c, cf, verb, pos, o) }
	}
}

// banOpts are the flags of ban add.
type banOpts struct {
	dur    time.Duration
	reason string
	force  bool
}

// banDuration is the value of --for: a Go duration, or an error that
// shows one.
type banDuration struct{ d *time.Duration }

func (b banDuration) String() string {
	if b.d == nil {
		return ""
	}
	return b.d.String()
}

func (b banDuration) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("not a duration: write a number and a unit, as in 90m, 48h or 720h (30 days)")
	}
	*b.d = d
	return nil
}

// runBan runs `postern ban VERB POS...`.
func runBan(cl *cli, cf *configFlags, verb string, pos []string, o banOpts) error {
	stdout, now, dur, reason := cl.stdout, cl.now, o.dur, o.reason
	if verb == "add" || verb == "delete" {
		// Refuse a bad prefix here, before asking the server.
		p, err := admin.ParseBanPrefix(pos[0])
		if err != nil {
			return usageError("ban " + verb + ": " + err.Error())
		}
		if verb == "add" && !o.force && hostBits(pos[0]) {
			return usageError(fmt.Sprintf("ban add: %s has host bits set: it would ban all of %s; write %s to mean that, or the address alone to ban one (--force bans %s)",
				pos[0], p, p, p))
		}
	}
	if verb == "add" && (dur <= 0 || dur > admin.MaxBanFor) {
		return usageError(fmt.Sprintf("ban add: --for must be from 1s to %s", admin.MaxBanFor))
	}
	cfg, err := cf.load()
	if err != nil {
		return err
	}
	sock := cfg.AdminSocket()
	c := &admin.Client{SocketPath: sock}
	ctx := context.Background()
	switch verb {
	case "list":
		bans, err := c.Bans(ctx)
		if err != nil {
			return banError(err, sock)
		}
		printBans(stdout, bans, now())
	case "show":
		b, err := c.BanOf(ctx, pos[0])
		if errors.Is(err, admin.ErrNoBan) {
			fmt.Fprintf(stdout, "%s is not banned\n", pos[0])
			return nil
		}
		if err != nil {
			return banError(err, sock)
		}
		printBan(stdout, b, now())
	case "add":
		old, err := exactBan(ctx, c, pos[0])
		if err != nil {
			return banError(err, sock)
		}
		b, err := c.Ban(ctx, pos[0], dur, reason)
		if err != nil {
			return banError(err, sock)
		}
		fmt.Fprintf(stdout, "%s banned until %s (%s)\n", b.Prefix, b.Until.UTC().Format(time.RFC3339), remaining(b.Until.Sub(now())))
		if old != nil {
			warnReplaced(stdout, *old, b)
		}
	case "delete":
		if err := c.Unban(ctx, pos[0]); err != nil {
			if errors.Is(err, admin.ErrNoBan) {
				p, _ := admin.ParseBanPrefix(pos[0])
				return fmt.Errorf("ban delete: no ban of exactly %s (see postern ban show ADDR)", p)
			}
			return banError(err, sock)
		}
		fmt.Fprintf(stdout, "%s: ban lifted\n", pos[0])
	}
	return nil
}

// hostBits reports whether s is a CIDR prefix written with bits set
// past its length ("10.1.2.3/8"), which would ban more than it seems to.
func hostBits(s string) bool {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	return err == nil && p.Masked() != p
}

// exactBan returns the ban of exactly the prefix s, or nil.
func exactBan(ctx context.Context, c *admin.Client, s string) (*admin.BanInfo, error) {
	p, err := admin.ParseBanPrefix(s)
	if err != nil {
		return nil, err
	}
	bans, err := c.Bans(ctx)
	if err != nil {
		return nil, err
	}
	for _, b := range bans {
		if b.Prefix == p.String() {
			return &b, nil
		}
	}
	return nil, nil
}

// warnReplaced says what a new ban changed of the one it replaced: an
// earlier end, another reason.
func warnReplaced(w io.Writer, old, b admin.BanInfo) {
	if b.Until.Before(old.Until) {
		fmt.Fprintf(w, "warning: %s was banned until %s; the new ban ends sooner\n", old.Prefix, old.Until.UTC().Format(time.RFC3339))
	} else {
		fmt.Fprintf(w, "warning: %s was banned already (until %s); replaced\n", old.Prefix, old.Until.UTC().Format(time.RFC3339))
	}
	if old.Reason != b.Reason {
		fmt.Fprintf(w, "warning: its reason was %q, now %q\n", old.Reason, b.Reason)
	}
}

// banError turns the admin client's errors into what the operator is
// told.
func banError(err error, sock string) error {
	if errors.Is(err, admin.ErrNotRunning) {
		return notRunning(sock)
	}
	return fmt.Errorf("ban: %w", err)
}

// printBans writes the bans as a table.
func printBans(w io.Writer, bans []admin.BanInfo, now time.Time) {
	if len(bans) == 0 {
		fmt.Fprintln(w, "No address is banned.")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PREFIX\tUNTIL\tREMAINING\tSTRIKES\tMANUAL\tREASON")
	for _, b := range bans {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", b.Prefix, b.Until.UTC().Format("2006-01-02 15:04:05Z"),
			remaining(b.Until.Sub(now)), b.Strikes, yesNo(b.Manual), b.Reason)
	}
	tw.Flush()
	fmt.Fprintf(w, "%d %s\n", len(bans), plural(len(bans), "ban", "bans"))
}

// printBan writes one ban in detail.
func printBan(w io.Writer, b admin.BanInfo, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	fmt.Fprintf(tw, "Banned:\t%s\n", b.Prefix)
	fmt.Fprintf(tw, "Reason:\t%s\n", b.Reason)
	fmt.Fprintf(tw, "Until:\t%s (%s left)\n", b.Until.UTC().Format(time.RFC3339), remaining(b.Until.Sub(now)))
	if !b.Created.IsZero() {
		fmt.Fprintf(tw, "Since:\t%s\n", b.Created.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(tw, "Strikes:\t%d\n", b.Strikes)
	fmt.Fprintf(tw, "Manual:\t%s\n", yesNo(b.Manual))
	tw.Flush()
}

// remaining writes a time left as "2d03h", "5h20m", "4m10s" or "12s".
func remaining(d time.Duration) string {
	if d <= 0 {
		return "ended"
	}
	d = d.Round(time.Second)
	switch {
	case d >= 24*time.Hour:
		return fmt.Sprintf("%dd%02dh", d/(24*time.Hour), d%(24*time.Hour)/time.Hour)
	case d >= time.Hour:
		return fmt.Sprintf("%dh%02dm", d/time.Hour, d%time.Hour/time.Minute)
	case d >= time.Minute:
		return fmt.Sprintf("%dm%02ds", d/time.Minute, d%time.Minute/time.Second)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
