package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"strings"
	"time"

	"postern/internal/check"
	"postern/internal/dns"
	"postern/internal/server"
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
	} else if res, err := server.NewResolver(cfg); err != nil {
		out = append(out, check.Result{Check: "config", Status: check.StatusFail, Message: err.Error(),
			Fix: "set [dns] servers, or make /etc/resolv.conf name a resolver"})
	} else {
		// The policy host is looked up through [dns], as delivery does.
		hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			DialContext: (&dns.Dialer{Resolver: res}).DialContext, ForceAttemptHTTP2: true}}
		out = server.RunChecks(context.Background(), server.NewChecker(cfg, res, hc))
	}
	if err := check.Print(stdout, out, asJSON); err != nil {
		return err
	}
	if check.Failed(out) {
		return errCheckFailed
	}
	return nil
}
