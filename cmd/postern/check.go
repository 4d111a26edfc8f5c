package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"postern/internal/check"
	"postern/internal/config"
	"postern/internal/dns"
	"postern/internal/userdb"
)

// errCheckFailed is returned by cmdCheck when a check failed (exit 1).
var errCheckFailed = errors.New("check: some checks failed (FAIL lines say what to fix)")

// checkFlags is `postern check`.
func checkFlags(c *cli, fs *flag.FlagSet) func([]string) error {
	cf := c.configFlags(fs)
	asJSON := fs.Bool("json", false, "print the results as a JSON array of {check, domain, status, message, fix}")
	return func([]string) error { return cmdCheck(cf, *asJSON, c.stdout) }
}

// cmdCheck runs "postern check [--config FILE | --data DIR] [--json]":
// the configuration, the data directory's owner and modes, the
// certificates, and the DNS of every local domain (internal/check). It
// prints one line per check (OK, WARN, FAIL) with what to fix, or with
// --json an array of check.Result; it returns errCheckFailed when any
// check failed.
func cmdCheck(cf *configFlags, asJSON bool, stdout io.Writer) error {
	var out []check.Result
	cfg, err := cf.load()
	var ue usageError
	if errors.As(err, &ue) {
		return err
	}
	if err != nil {
		// One line per problem, as serve prints them; the fix once.
		var lines []string
		for _, l := range strings.Split(err.Error(), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				lines = append(lines, l)
			}
		}
		for i, l := range lines {
			fix := ""
			if i == len(lines)-1 {
				fix = "correct the configuration as each message says (docs/configuration.md)"
			}
			out = append(out, check.Result{Check: "config", Status: check.StatusFail, Message: l, Fix: fix})
		}
	} else if res, err := newResolver(cfg); err != nil {
		out = append(out, check.Result{Check: "config", Status: check.StatusFail, Message: err.Error(),
			Fix: "set [dns] servers, or make /etc/resolv.conf name a resolver"})
	} else {
		// The policy host is looked up through [dns], as delivery does.
		hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			DialContext: (&dns.Dialer{Resolver: res}).DialContext, ForceAttemptHTTP2: true}}
		out = runChecks(context.Background(), newChecker(cfg, res, hc))
	}
	if err := check.Print(stdout, out, asJSON); err != nil {
		return err
	}
	if check.Failed(out) {
		return errCheckFailed
	}
	return nil
}

// newChecker returns the checker of cfg, with serve's own loaders, so
// that check fails wherever serve would refuse to start.
func newChecker(cfg *config.Config, res dns.Resolver, hc *http.Client) *check.Checker {
	quiet := slog.New(slog.DiscardHandler)
	return &check.Checker{Config: cfg, Resolver: res, HTTP: hc, Now: time.Now, Loaders: check.Loaders{
		OpenUsers: func(file string) (*userdb.DB, error) {
			if file != "" {
				return userdb.Open(file, usersOptions(cfg))
			}
			return openUsers(cfg, quiet)
		},
		Directory: directoryConfig(cfg),
		ListenerTLS: func(lc config.Listener) error {
			_, err := listenerTLS(&tls.Config{}, cfg, lc)
			return err
		},
		Planner: func(res dns.Resolver) error {
			_, err := newPlanner(cfg, res, quiet, nil)
			return err
		},
		Remote: func(sec config.Secrets) error {
			out, err := newRemote(cfg, sec, nil, quiet)
			if err == nil {
				out.Close()
			}
			return err
		},
		Admission: func(sec config.Secrets) error {
			a, err := newAdmission(cfg, sec, quiet, nil, partMetrics{})
			if err == nil {
				a.Close()
			}
			return err
		},
		Auth: func(sec config.Secrets) error {
			_, err := newAuthSetup(cfg, sec, nil, nil)
			return err
		},
	}}
}

// runChecks runs c with the PKCS#11 tokens of its configuration.
func runChecks(ctx context.Context, c *check.Checker) []check.Result {
	c.Tokens = newTokens(c.Config, nil, nil) // pkcs11.go
	defer c.Tokens.Close()
	return c.Run(ctx)
}
