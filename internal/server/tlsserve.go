package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/redis/go-redis/v9"

	"postern/internal/config"
	"postern/internal/pkcs11"
	"postern/internal/smtpd"
	"postern/internal/tlsconf"
	"postern/internal/tlsconf/redistickets"
)

// setupTLS loads (or, when configured, creates) the certificates, checks
// each as a client would (a broken chain stops the start unless
// allowBroken, which logs it at ERROR level) and returns them with the
// TLS configuration the listeners share. Keys named by pkcs11: URIs come
// from tokens. The certificates' expiry gauge goes into met.
func setupTLS(cfg *config.Config, log *slog.Logger, allowBroken bool, tokens *pkcs11.Tokens, met *tlsconf.Metrics) (*tlsconf.Certs, *tls.Config, error) {
	if cfg.TLS.SelfSigned {
		certFile, _ := cfg.TLSFiles()
		if _, _, err := tlsconf.EnsureSelfSigned(filepath.Dir(certFile), []string{cfg.Hostname}, time.Now()); err != nil {
			return nil, nil, err
		}
	}
	opts := certsOptions(cfg)
	opts.AllowBrokenChain, opts.Logger, opts.Metrics = allowBroken, log, met
	opts.Keys = tokenKeys(tokens, log) // pkcs11.go
	if cfg.TLS.CAFile != "" {
		roots, err := tlsconf.LoadPool(cfg.TLS.CAFile, "tls.ca_file", false)
		if err != nil {
			return nil, nil, fmt.Errorf("serve: %w", err)
		}
		opts.Check.Roots = roots
	}
	if allowBroken {
		log.Error("started with --allow-broken-chain: a certificate clients refuse is served rather than stopping; remove the flag once fixed")
	}
	certs, err := tlsconf.OpenCerts(opts)
	var ce *tlsconf.ChainError
	if errors.As(err, &ce) {
		return nil, nil, fmt.Errorf("%w\n(start anyway, for emergencies only: postern serve --allow-broken-chain)", err)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("serve: %w\n(fix: correct cert_file and key_file in [tls], or use tls.self_signed = true or [acme])", err)
	}
	if err != nil {
		return nil, nil, err // unreadable files, a key its token does not give: the flag would not help
	}
	for name, c := range certs.Certificates() {
		log.Info("certificate loaded", "certificate", name, "subject", c.Leaf.Subject.CommonName,
			"names", c.Leaf.DNSNames, "not_after", c.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return certs, tlsconf.ServerConfig(certs, tlsPolicy(cfg)), nil
}

// runTLS gives each listener its own TLS configuration (session tickets
// off where tls_tickets = false, rotating ticket keys elsewhere, shared
// through Redis when [redis] is configured), and until ctx ends keeps the
// ticket keys rotating, reloads the certificates when their files
// change, and checks their expiry.
func runTLS(ctx context.Context, cfg *config.Config, certs *tlsconf.Certs, servers []*smtpd.Server, rdb *redis.Client, log *slog.Logger) error {
	to := ticketOptions(cfg)
	to.Store, to.Logger = ticketStore(cfg, rdb), log
	tickets := tlsconf.NewTickets(to)
	for i, s := range servers {
		if s.TLSConfig == nil {
			continue
		}
		s.TLSConfig = s.TLSConfig.Clone()
		s.TLSConfig.SessionTicketsDisabled = cfg.Listeners[i].NoTLSTickets
		if err := tickets.Add(ctx, s.TLSConfig); err != nil {
			// Go's own per-node ticket keys serve until the store
			// answers (tickets.Run retries).
			log.Error("TLS session ticket keys unavailable; per-node keys meanwhile", "listener", s.Name, "err", err)
		}
	}
	go tickets.Run(ctx)
	go certs.RunExpiry(ctx, 0)
	if files := certs.Files(); len(files) > 0 {
		err := tlsconf.Watch(ctx, files, 0, func() {
			if err := certs.Reload(); err != nil {
				log.Error("certificate files changed: certificate kept", "err", err)
			} else {
				log.Info("certificate files changed: certificate loaded")
			}
		})
		if err != nil {
			log.Warn("certificate files not watched: reload with SIGHUP", "err", err)
		}
	}
	return nil
}

// ticketStore returns where the session ticket keys live: in Redis
// through rdb, the client of [redis] that the admission store shares
// (key KEY_PREFIX + "tls:ticket-keys"), so that every node has them; in
// memory without [redis] (rdb nil).
func ticketStore(cfg *config.Config, rdb *redis.Client) tlsconf.TicketKeyStore {
	if rdb == nil {
		return &tlsconf.MemoryTicketKeys{}
	}
	return &redistickets.Store{Client: rdb, Key: cfg.Redis.KeyPrefix + "tls:ticket-keys"}
}
