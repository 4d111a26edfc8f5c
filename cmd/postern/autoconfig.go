package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"postern/internal/autoconfig"
	"postern/internal/config"
)

// autoconfigOptions turns the configuration into what internal/autoconfig
// serves: the local domains, the first submissions and submission
// listeners (port and mechanisms) at hostname, and [autoconfig]'s IMAP
// server.
func autoconfigOptions(cfg *config.Config, log *slog.Logger) autoconfig.Options {
	o := autoconfig.Options{Domains: cfg.LocalDomains, Logger: log.With("listener", "autoconfig")}
	for _, l := range cfg.Listeners {
		_, p, err := net.SplitHostPort(l.Address)
		port, perr := strconv.Atoi(p)
		if err != nil || perr != nil {
			continue
		}
		e := &autoconfig.Endpoint{Host: cfg.Hostname, Port: port, Mechanisms: l.AuthMechanisms}
		switch {
		case l.Role == config.RoleSubmissions && o.Submissions == nil:
			o.Submissions = e
		case l.Role == config.RoleSubmission && o.Submission == nil:
			o.Submission = e
		}
	}
	if a := cfg.Autoconfig; a.IMAPHost != "" {
		o.IMAP = &autoconfig.Endpoint{Host: a.IMAPHost, Port: a.IMAPPort}
	}
	return o
}

// startAutoconfig serves [autoconfig] over HTTPS with the server's
// certificates (chosen by SNI: autoconfig.DOMAIN, autodiscover.DOMAIN)
// on the socket listen gives it ("autoconfig"). It returns nil when the
// table is absent.
func startAutoconfig(cfg *config.Config, tlsCfg *tls.Config, listen func(name, addr string) (net.Listener, error), log *slog.Logger) (*http.Server, error) {
	if !cfg.Autoconfig.Enabled {
		return nil, nil
	}
	h, err := autoconfig.New(autoconfigOptions(cfg, log))
	if err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	l, err := listen("autoconfig", cfg.Autoconfig.Address)
	if err != nil {
		return nil, fmt.Errorf("serve: autoconfig.address: %w", err)
	}
	tc := tlsCfg.Clone()
	tc.NextProtos = []string{"http/1.1"}
	tc.ClientAuth = tls.NoClientCert
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    16 << 10,
		TLSConfig:         tc,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	go func() {
		if err := hs.Serve(tls.NewListener(l, tc)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("autoconfig stopped", "err", err)
		}
	}()
	log.Info("listening", "listener", "autoconfig", "address", "https://"+l.Addr().String())
	return hs, nil
}
