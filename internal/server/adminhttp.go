package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"strconv"
	"time"

	"postern/internal/admin"
	"postern/internal/config"
)

// adminListen listens on the admin socket, DATA/admin.sock: mode 0600,
// or 0660 with admin.socket_group, whose members then also get to search
// the data directory (mode 0710 with that group).
func adminListen(cfg *config.Config, path string) (net.Listener, error) {
	if cfg.Admin.SocketGroup == "" {
		return admin.Listen(path)
	}
	g, err := user.LookupGroup(cfg.Admin.SocketGroup)
	if err != nil {
		return nil, fmt.Errorf("serve: admin.socket_group: %w", err)
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		return nil, fmt.Errorf("serve: admin.socket_group %s: gid %q", g.Name, g.Gid)
	}
	if err := os.Chown(cfg.DataDir, -1, gid); err != nil {
		return nil, fmt.Errorf("serve: admin.socket_group: data directory: %w", err)
	}
	if err := os.Chmod(cfg.DataDir, 0o710); err != nil {
		return nil, fmt.Errorf("serve: admin.socket_group: data directory: %w", err)
	}
	return admin.ListenGroup(path, gid)
}

// startAdminHTTP serves the admin API and the status page on
// admin.http_address behind the token (tok, read from admin.token_file by
// config.ReadSecrets), over TLS with the server's
// certificates unless admin.http_tls is false (loopback only), on the
// listener listen gives it (named "admin": a socket from systemd, or one
// bound now). It returns nil when admin.http_address is not set.
func startAdminHTTP(cfg *config.Config, tok string, srv *admin.Server, tlsCfg *tls.Config,
	listen func(name, addr string) (net.Listener, error), log *slog.Logger) (*http.Server, error) {
	a := cfg.Admin
	if a.HTTPAddress == "" {
		return nil, nil
	}
	l, err := listen("admin", a.HTTPAddress)
	if err != nil {
		return nil, fmt.Errorf("serve: admin.http_address: %w", err)
	}
	hs := &http.Server{
		Handler:           srv.HTTPHandler(tok),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	scheme := "http"
	if a.HTTPTLS {
		tc := tlsCfg.Clone()
		tc.NextProtos = []string{"http/1.1"}
		tc.ClientAuth = tls.NoClientCert
		hs.TLSConfig = tc
		l = tls.NewListener(l, tc)
		scheme = "https"
	}
	go func() {
		if err := hs.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin http stopped", "err", err)
		}
	}()
	log.Info("listening", "listener", "admin-http", "address", scheme+"://"+l.Addr().String())
	return hs, nil
}
