package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"postern/internal/autoconfig"
	"postern/internal/config"
)

// startAutoconfig serves [autoconfig] over HTTPS with the server's
// certificates (chosen by SNI: autoconfig.DOMAIN, autodiscover.DOMAIN)
// on the socket listen gives it ("autoconfig"), counting into met. It
// returns nil when the table is absent.
func startAutoconfig(cfg *config.Config, tlsCfg *tls.Config, listen func(name, addr string) (net.Listener, error), log *slog.Logger, met *autoconfig.Metrics) (*http.Server, error) {
	if !cfg.Autoconfig.Enabled {
		return nil, nil
	}
	o := autoconfigOptions(cfg)
	o.Logger, o.Metrics = log.With("listener", "autoconfig"), met
	h, err := autoconfig.New(o)
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
