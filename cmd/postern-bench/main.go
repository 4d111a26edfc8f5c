// Command postern-bench is a load generator for any SMTP server, the
// one Postern's benchmarks use (scripts/bench-sessions, scripts/soak,
// docs/performance.md): it sends messages over plain SMTP, STARTTLS or
// implicit TLS, with or without AUTH, and reports messages per second
// and the latency percentiles; or it opens many sessions, holds them
// and checks that each is alive. It is a tool for testing, not an
// administration command, and is not part of the Debian package.
//
//	postern-bench --addr HOST:PORT --rcpt ADDR [--mode plain|starttls|tls] [--user U --pass P] [-c N] [-n N] [-m N] ...
//	postern-bench --idle N [--hold D] [--pid SERVERPID] --addr HOST:PORT [--mode ...]
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"time"

	"postern/internal/loadgen"
)

// usageError is a command-line mistake (exit status 64, EX_USAGE).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func main() {
	err := cmdBench(os.Args[1:], os.Stdout)
	switch {
	case err == nil:
		return
	case errors.Is(err, flag.ErrHelp):
		return
	case errors.As(err, new(usageError)):
		fmt.Fprintln(os.Stderr, "postern-bench:", err)
		fmt.Fprintln(os.Stderr, "Run 'postern-bench --help' for its usage.")
		os.Exit(64)
	}
	fmt.Fprintln(os.Stderr, "postern-bench:", err)
	os.Exit(1)
}

// benchResult is what postern-bench prints with --json; the field names
// match ../shared/bench/smtpload's (messages, errors, seconds,
// per_second, p50_ms, p99_ms, first_error).
type benchResult struct {
	Messages   int     `json:"messages"`
	Errors     int     `json:"errors"`
	Sessions   int     `json:"sessions"`
	Seconds    float64 `json:"seconds"`
	PerSecond  float64 `json:"per_second"`
	P50ms      float64 `json:"p50_ms"`
	P90ms      float64 `json:"p90_ms"`
	P99ms      float64 `json:"p99_ms"`
	MaxMs      float64 `json:"max_ms"`
	SetupP50ms float64 `json:"setup_p50_ms"`
	SetupP99ms float64 `json:"setup_p99_ms"`
	FirstError string  `json:"first_error,omitempty"`
}

// idleResult is what postern-bench --idle prints with --json.
type idleResult struct {
	Sessions    int     `json:"sessions"`
	Opened      int     `json:"opened"`
	Errors      int     `json:"errors"`
	OpenSeconds float64 `json:"open_seconds"`
	HeldSeconds float64 `json:"held_seconds"`
	Alive       int     `json:"alive"`
	ServerRSSKB int64   `json:"server_rss_kb,omitempty"`
	FirstError  string  `json:"first_error,omitempty"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// cmdBench runs postern-bench with args, writing to stdout; -h and
// --help print the usage there and return flag.ErrHelp.
func cmdBench(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		o        loadgen.Options
		mode     = fs.String("mode", "plain", "plain, starttls or tls (implicit TLS)")
		rcpt     = fs.String("rcpt", "", "envelope recipients, comma-separated (required)")
		insecure = fs.Bool("insecure", false, "do not verify the server's certificate")
		sni      = fs.String("servername", "", "TLS server name (default: the host of -addr)")
		asJSON   = fs.Bool("json", false, "print the result as one JSON line")
		idle     = fs.Int("idle", 0, "instead of sending: open this many sessions, hold them for -hold, check each with NOOP")
		hold     = fs.Duration("hold", 10*time.Second, "with -idle: how long to hold the sessions")
		pid      = fs.Int("pid", 0, "with -idle: the server's process id, to report its VmRSS while the sessions are held")
		dialers  = fs.Int("dialers", 64, "with -idle: sessions set up at a time")
	)
	fs.StringVar(&o.Addr, "addr", "127.0.0.1:2525", "server address host:port")
	fs.StringVar(&o.User, "user", "", "AUTH PLAIN user (none: no AUTH)")
	fs.StringVar(&o.Pass, "pass", "", "AUTH PLAIN password")
	fs.StringVar(&o.From, "from", "", "envelope sender (default: -user, or bench@example.test)")
	fs.StringVar(&o.Hello, "helo", "bench.invalid", "EHLO name")
	fs.IntVar(&o.Concurrency, "c", 8, "concurrent sessions")
	fs.IntVar(&o.Messages, "n", 1000, "messages in all (0: until -t)")
	fs.IntVar(&o.PerConn, "m", 1, "messages per connection")
	fs.IntVar(&o.Size, "s", 10240, "message size in bytes")
	fs.DurationVar(&o.Duration, "t", 0, "time cap (0: none)")
	fs.DurationVar(&o.Timeout, "timeout", 30*time.Second, "per exchange (dial, handshake, command)")
	fs.BoolVar(&o.Resume, "resume", false, "resume TLS sessions (session tickets), as mail clients do")
	fs.Usage = func() {}
	usage := func() {
		fmt.Fprintln(stdout, "Usage: postern-bench --addr HOST:PORT --rcpt ADDR [--mode plain|starttls|tls] [--user U --pass P] [-c N] [-n N] [-m N] [-s BYTES] [-t D] [--json]")
		fmt.Fprintln(stdout, "       postern-bench --idle N [--hold D] [--pid SERVERPID] --addr HOST:PORT [--mode ...] [--user U --pass P]")
		fmt.Fprintln(stdout, "\nA load generator for any SMTP server: messages per second and latency percentiles, or many idle sessions held.\n\nFlags:")
		fs.VisitAll(func(f *flag.Flag) {
			name, usage := flag.UnquoteUsage(f)
			dash := "--"
			if len(f.Name) == 1 {
				dash = "-"
			}
			fmt.Fprintf(stdout, "  %s%s %s\n    \t%s (default %q)\n", dash, f.Name, name, usage, f.DefValue)
		})
		fmt.Fprintln(stdout, "\nExample:\n  postern-bench --addr 127.0.0.1:2587 --mode starttls --insecure --user bench@example.test --pass benchpass --rcpt bench@example.test -c 8 -n 2000")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage()
			return err
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{"unexpected argument " + fs.Arg(0)}
	}
	o.Mode = loadgen.Mode(*mode)
	switch o.Mode {
	case loadgen.ModePlain, loadgen.ModeSTARTTLS, loadgen.ModeTLS:
	default:
		return usageError{fmt.Sprintf("--mode %q: want plain, starttls or tls", *mode)}
	}
	host, _, err := net.SplitHostPort(o.Addr)
	if err != nil {
		return usageError{"--addr: " + err.Error()}
	}
	if *sni != "" {
		host = *sni
	}
	o.TLSConfig = &tls.Config{ServerName: host, InsecureSkipVerify: *insecure}
	if o.From == "" {
		o.From = o.User
		if !strings.Contains(o.From, "@") {
			o.From = "bench@example.test"
		}
	}
	for r := range strings.SplitSeq(*rcpt, ",") {
		if r = strings.TrimSpace(r); r != "" {
			o.Rcpt = append(o.Rcpt, r)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if *idle > 0 {
		return benchIdle(ctx, stdout, loadgen.IdleOptions{Options: o, Sessions: *idle, Dialers: *dialers}, *hold, *pid, *asJSON)
	}
	if len(o.Rcpt) == 0 {
		return usageError{"--rcpt is required"}
	}
	if o.Messages <= 0 && o.Duration <= 0 {
		return usageError{"set -n or -t"}
	}
	r, err := loadgen.Run(ctx, o)
	if err != nil {
		return err
	}
	br := benchResult{
		Messages: r.Messages, Errors: r.Errors, Sessions: r.Sessions, Seconds: r.Elapsed.Seconds(), PerSecond: r.PerSecond,
		P50ms: ms(r.Latency.P50), P90ms: ms(r.Latency.P90), P99ms: ms(r.Latency.P99), MaxMs: ms(r.Latency.Max),
		SetupP50ms: ms(r.Setup.P50), SetupP99ms: ms(r.Setup.P99), FirstError: r.FirstError,
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(br)
	}
	fmt.Fprintf(stdout, "%d messages in %.2fs over %d sessions (%s, c=%d, m=%d, %d bytes): %.1f msgs/s\n",
		br.Messages, br.Seconds, br.Sessions, o.Mode, o.Concurrency, o.PerConn, o.Size, br.PerSecond)
	fmt.Fprintf(stdout, "latency per message (MAIL to 250): p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms\n",
		br.P50ms, br.P90ms, br.P99ms, br.MaxMs)
	fmt.Fprintf(stdout, "session setup (connect to ready for MAIL): p50 %.1f ms, p99 %.1f ms\n", br.SetupP50ms, br.SetupP99ms)
	fmt.Fprintf(stdout, "errors: %d\n", br.Errors)
	if br.FirstError != "" {
		fmt.Fprintf(stdout, "first error: %s\n", br.FirstError)
	}
	return nil
}

func benchIdle(ctx context.Context, stdout io.Writer, o loadgen.IdleOptions, hold time.Duration, pid int, asJSON bool) error {
	id, err := loadgen.OpenIdle(ctx, o)
	if err != nil {
		return err
	}
	defer id.Close()
	res := idleResult{Sessions: o.Sessions, Opened: id.Opened, Errors: id.Errors, OpenSeconds: id.Elapsed.Seconds(), FirstError: id.FirstError}
	if !asJSON {
		fmt.Fprintf(stdout, "opened %d of %d sessions (%s) in %.1fs, %d errors; holding them %v\n",
			id.Opened, o.Sessions, o.Mode, res.OpenSeconds, id.Errors, hold)
	}
	t0 := time.Now()
	select {
	case <-time.After(hold):
	case <-ctx.Done():
	}
	if pid > 0 {
		res.ServerRSSKB, err = vmRSS(pid)
		if err != nil {
			return err
		}
	}
	res.HeldSeconds = time.Since(t0).Seconds()
	alive, cerr := id.Check(o.Dialers)
	res.Alive = alive
	if cerr != nil && res.FirstError == "" {
		res.FirstError = cerr.Error()
	}
	if asJSON {
		return json.NewEncoder(stdout).Encode(res)
	}
	if pid > 0 {
		fmt.Fprintf(stdout, "server pid %d VmRSS while held: %d kB (%.1f MB)\n", pid, res.ServerRSSKB, float64(res.ServerRSSKB)/1000)
	}
	fmt.Fprintf(stdout, "alive after %.1fs: %d of %d\n", res.HeldSeconds, alive, id.Opened)
	if res.FirstError != "" {
		fmt.Fprintf(stdout, "first error: %s\n", res.FirstError)
	}
	return nil
}

// vmRSS reads a process's resident set size, in kB, from /proc.
func vmRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("%w", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int64
			if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%d kB", &kb); err != nil {
				return 0, fmt.Errorf("VmRSS %q: %w", rest, err)
			}
			return kb, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}
