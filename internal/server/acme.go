package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"postern/internal/acme"
	"postern/internal/config"
	"postern/internal/tlsconf"
)

// startACME runs the [acme] certificate manager until ctx ends, when
// configured: it binds the challenge responder (acme.http_address for
// http-01, acme.tls_alpn_address for tls-alpn-01), installs the stored
// certificate at once and every certificate obtained later into certs
// under the name "acme:HOST", replacing the previous one without
// touching open sessions; the renewal loop runs in the background.
// Without [acme] it does nothing. listen gets the responder's socket
// (preBound.listen: passed by systemd, bound before the privilege drop,
// or bound now); met counts the attempts and shows the expiry.
func startACME(ctx context.Context, cfg *config.Config, certs *tlsconf.Certs, log *slog.Logger, listen func(name, addr string) (net.Listener, error), met *acme.Metrics) error {
	a := cfg.ACME
	if !a.Enabled {
		return nil
	}
	client, err := acme.HTTPClient(a.CARootsFile)
	if err != nil {
		return fmt.Errorf("serve: acme.ca_roots_file: %w", err)
	}
	opts := acmeOptions(cfg)
	opts.HTTPClient, opts.Logger, opts.Metrics = client, log, met
	opts.Install = func(c *tls.Certificate) error { return certs.Set("acme:"+a.Hostnames[0], c) }
	m, err := acme.New(opts)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	switch a.Challenge {
	case config.ChallengeHTTP01:
		l, err := listen("acme-http-01", a.HTTPAddress)
		if err != nil {
			return fmt.Errorf("serve: acme.http_address: %w", err)
		}
		srv := &http.Server{Handler: m.HTTPHandler(), ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(l)
		go func() { <-ctx.Done(); srv.Close() }()
		log.Info("listening", "listener", "acme-http-01", "address", l.Addr().String())
	case config.ChallengeTLSALPN01:
		l, err := listen("acme-tls-alpn-01", a.TLSALPNAddress)
		if err != nil {
			return fmt.Errorf("serve: acme.tls_alpn_address: %w", err)
		}
		go m.ServeTLSALPN(l)
		go func() { <-ctx.Done(); l.Close() }()
		log.Info("listening", "listener", "acme-tls-alpn-01", "address", l.Addr().String())
	}
	// The stored certificate is served before the listeners open.
	if _, err := m.Load(); err != nil {
		log.Info("acme: no usable stored certificate yet; obtaining one", "err", err)
	}
	if len(certs.Certificates()) == 0 {
		log.Warn("acme: no certificate until the first is obtained: TLS handshakes fail until then")
	}
	go m.Run(ctx)
	return nil
}
