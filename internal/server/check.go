package server

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net/http"
	"time"

	"postern/internal/check"
	"postern/internal/config"
	"postern/internal/dns"
	"postern/internal/userdb"
)

// NewChecker returns the checker of cfg, with serve's own loaders, so
// that check fails wherever serve would refuse to start.
func NewChecker(cfg *config.Config, res dns.Resolver, hc *http.Client) *check.Checker {
	quiet := slog.New(slog.DiscardHandler)
	return &check.Checker{Config: cfg, Resolver: res, HTTP: hc, Now: time.Now, Loaders: check.Loaders{
		OpenUsers: func(file string) (*userdb.DB, error) {
			if file != "" {
				return userdb.Open(file, usersOptions(cfg))
			}
			return OpenUsers(cfg, quiet)
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

// RunChecks runs c with the PKCS#11 tokens of its configuration, as
// serve opens them, and returns its results.
func RunChecks(ctx context.Context, c *check.Checker) []check.Result {
	c.Tokens = newTokens(c.Config, nil, nil) // pkcs11.go
	defer c.Tokens.Close()
	return c.Run(ctx)
}
