package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"postern/internal/admin"
	"postern/internal/config"
	"postern/internal/delivery"
	"postern/internal/fsutil"
	"postern/internal/metrics"
	"postern/internal/queue"
	"postern/internal/smtpd"
	"postern/internal/tlsconf"
	"postern/internal/userdb"
)

// cmdServe runs the server until SIGTERM or SIGINT.
func cmdServe(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var cf configFlags
	cf.register(fs)
	allowBroken := fs.Bool("allow-broken-chain", false, "serve certificates that fail the chain checks (emergencies only; logged at ERROR)")
	if pos, err := parseArgs(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageError{fmt.Sprintf("serve: unexpected argument %q", pos[0])}
	}
	ready := handoverChild() // started by a graceful restart (handover.go)
	cfg, err := cf.load()
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	events := admin.NewEvents(50) // recent deliveries and auth anomalies, for the status page
	log = slog.New(events.Handler(log.Handler()))
	// systemd's sockets, binding as root, user and group, the data
	// directory's owner and mode (privs.go, activation.go).
	pre, err := prepareProcess(cfg, log)
	if err != nil {
		return err
	}
	defer pre.closeAll()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("serve: data directory: %w", err)
	}

	certs, tlsCfg, err := setupTLS(cfg, log, *allowBroken)
	if err != nil {
		return err
	}
	db, err := openUsers(cfg, log)
	if err != nil {
		return err
	}
	defer db.Close()
	if cf.config == "" {
		if err := firstStart(cfg, db, stdout, log); err != nil {
			return err
		}
	}
	dcfg := userdb.DirectoryConfig{
		LocalDomains: cfg.LocalDomains,
		Aliases:      cfg.Aliases,
		SendAs:       sendAsGrants(cfg),
	}
	if err := dcfg.Validate(); err != nil {
		return err
	}
	dir := userdb.NewDirectory(db, dcfg)

	resolver, err := newResolver(cfg)
	if err != nil {
		return err
	}
	planner, err := newPlanner(cfg, resolver, log)
	if err != nil {
		return err
	}
	mxFilter, subFilter, err := mailAuthFilters(cfg, resolver, dir.IsLocalDomain, log)
	if err != nil {
		return err
	}
	out, err := newRemote(cfg, planner, log)
	if err != nil {
		return err
	}
	defer out.Close()
	var local queue.Deliverer = &localDelivery{dir: dir, maildir: &delivery.Maildir{Root: cfg.MailDir()}}
	if cfg.LMTP.Address != "" {
		local = &lmtpLocal{dir: dir, lmtp: &delivery.LMTP{Network: cfg.LMTP.Network, Address: cfg.LMTP.Address, Hostname: cfg.Hostname}}
	}
	// After a graceful restart, the old process stops serving when told
	// this one loaded fine, then releases the spool (handover.go).
	handoverReady(ready, log)
	spool, err := openSpoolHandover(queue.Options{Dir: cfg.SpoolDir(), SegmentSize: cfg.Spool.SegmentSize, Logger: log}, ready != nil)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runner := queue.NewRunner(spool, queue.RunnerOptions{
		Local:       local,
		RemoteBatch: remoteBatch{out},
		IsLocal:     func(addr string) bool { return dir.IsLocalDomain(domainOf(addr)) },
		Workers:     cfg.Delivery.Workers, // concurrent Maildir fsyncs share ext4 journal commits (docs/performance.md)
		Policy: queue.RetryPolicy{
			First: cfg.Delivery.RetryFirst, Max: cfg.Delivery.RetryMax, GiveUp: cfg.Delivery.GiveUp,
			DelayWarning: cfg.Delivery.DelayWarning, Jitter: 0.2,
		},
		Hostname: cfg.Hostname,
		Logger:   log,
	})
	runnerDone := make(chan error, 1)
	go func() { runnerDone <- runner.Run(ctx) }()

	// Bind every listener before serving any, so a taken port fails the
	// start instead of leaving a half-running server.
	var servers []*smtpd.Server
	var listeners []net.Listener
	var ho handover // the sockets a graceful restart passes on (SIGUSR2)
	listen := ho.record(pre.listen)
	closeAll := func() {
		for _, l := range listeners {
			l.Close()
		}
	}
	auth, err := newAuthSetup(cfg, db, certs)
	if err != nil {
		return err
	}
	adm, err := newAdmission(cfg, log) // gate, abuse engine, send limits (admission.go)
	if err != nil {
		return err
	}
	defer adm.Close()
	for _, lc := range cfg.Listeners {
		l, err := listen(lc.Name, lc.Address) // from systemd, bound before the privilege drop, or now
		if err != nil {
			closeAll()
			return fmt.Errorf("serve: listener %s: %w", lc.Name, err)
		}
		l = proxyListener(cfg, lc, l) // PROXY protocol (screen.go)
		listeners = append(listeners, l)
		ltls, err := listenerTLS(tlsCfg, cfg, lc)
		if err != nil {
			closeAll()
			return err
		}
		var filter smtpd.Filter = subFilter
		if lc.Role == config.RoleMX {
			filter = mxFilter
		}
		servers = append(servers, &smtpd.Server{
			Filter:            filter,
			Name:              lc.Name,
			Role:              roleOf(lc.Role),
			Hostname:          cfg.Hostname,
			TLSConfig:         ltls,
			Limits:            limitsOf(cfg),
			Directory:         dir,
			Auth:              auth.mechanisms(lc),
			Spool:             spoolAdapter{spool},
			Logger:            log,
			PostmasterAddress: cfg.Postmaster,
			Screen:            screenOf(lc, resolver, adm.store), // greet_delay, dnsbl (screen.go)
			Admitter:          adm.gate,
			AuthGuard:         adm.guard,
			SendLimiter:       adm.limiter,
		})
	}
	if err := runTLS(ctx, cfg, certs, servers, log); err != nil {
		closeAll()
		return err
	}
	if err := startACME(ctx, cfg, certs, log, listen); err != nil { // [acme] (acme.go)
		closeAll()
		return err
	}
	var httpSrv *http.Server
	var httpL net.Listener
	if cfg.HTTP.Address != "" {
		httpL, err = listen("http", cfg.HTTP.Address)
		if err != nil {
			closeAll()
			return fmt.Errorf("serve: http: %w", err)
		}
		httpSrv = &http.Server{Handler: httpHandler(cfg.HTTP.Pprof), ReadHeaderTimeout: 10 * time.Second}
		go httpSrv.Serve(httpL)
	}
	// The admin API (postern queue ...) on DATA/admin.sock, mode 0600.
	adminL, err := adminListen(cfg, cfg.AdminSocket()) // admin.socket_group (adminhttp.go)
	if err != nil {
		closeAll()
		if httpL != nil {
			httpL.Close()
		}
		return fmt.Errorf("serve: %w", err)
	}
	adminSrv := &admin.Server{Spool: spool, Runner: runner, Bans: adm.store, Logger: log.With("listener", "admin"),
		Local: localSubmit(cfg, spool, subFilter, adm.limiter)} // postern sendmail (sendmail.go)
	adminSrv.Reload = func() error { return reload(log, certs, db) } // postern reload
	adminSrv.Certs, adminSrv.Events = certs, events                  // the status page
	go func() {
		if err := adminSrv.Serve(adminL); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin socket stopped", "err", err)
		}
	}()
	log.Info("listening", "listener", "admin", "address", adminL.Addr().String())
	adminHTTP, err := startAdminHTTP(cfg, adminSrv, tlsCfg, listen, log) // admin.http_address (adminhttp.go)
	if err != nil {
		closeAll()
		if httpL != nil {
			httpL.Close()
		}
		adminSrv.Shutdown(ctx)
		return err
	}

	var wg sync.WaitGroup
	for i, s := range servers {
		wg.Add(1)
		go func(s *smtpd.Server, l net.Listener) {
			defer wg.Done()
			if err := s.Serve(l); err != nil && !errors.Is(err, smtpd.ErrServerClosed) {
				log.Error("listener stopped", "listener", s.Name, "err", err)
			}
		}(s, listeners[i])
		log.Info("listening", "listener", s.Name, "role", cfg.Listeners[i].Role, "address", listeners[i].Addr().String())
	}
	if httpL != nil {
		log.Info("listening", "listener", "http", "address", httpL.Addr().String())
	}
	pre.closeUnused(log)
	log.Info("postern ready", "version", version, "hostname", cfg.Hostname, "data", cfg.DataDir)

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR2)
	defer signal.Stop(sigs)
	for sig := range sigs {
		if sig == syscall.SIGHUP {
			reload(log, certs, db)
			continue
		}
		if sig == syscall.SIGUSR2 { // graceful restart: a new process takes the sockets (handover.go)
			if err := ho.start(log, handoverReadyTimeout); err != nil {
				log.Error("graceful restart failed: still serving", "err", err)
				continue
			}
		}
		log.Info("shutting down", "signal", sig.String(), "deadline", cfg.Limits.ShutdownTimeout)
		break
	}

	sctx, scancel := context.WithTimeout(context.Background(), cfg.Limits.ShutdownTimeout)
	defer scancel()
	for _, s := range servers {
		wg.Add(1)
		go func(s *smtpd.Server) {
			defer wg.Done()
			if err := s.Shutdown(sctx); err != nil {
				log.Warn("sessions cut at shutdown deadline", "listener", s.Name, "err", err)
			}
		}(s)
	}
	wg.Wait()
	if httpSrv != nil {
		httpSrv.Shutdown(sctx)
	}
	if adminHTTP != nil {
		adminHTTP.Shutdown(sctx)
	}
	adminSrv.Shutdown(sctx) // closes the socket: DATA/admin.sock is removed
	cancel()
	<-runnerDone
	if err := spool.Close(); err != nil {
		return err
	}
	log.Info("postern stopped")
	return nil
}

// firstStart creates postmaster@localhost with a random password on the
// embedded default's first start, writes it to DATA/initial-password and
// prints it once.
func firstStart(cfg *config.Config, db *userdb.DB, stdout io.Writer, log *slog.Logger) error {
	users, err := db.ListUsers(context.Background())
	if err != nil {
		return err
	}
	if len(users) > 0 {
		return nil
	}
	user := cfg.Postmaster
	pw, err := userdb.GeneratePassword()
	if err != nil {
		return err
	}
	path := filepath.Join(cfg.DataDir, "initial-password")
	if err := fsutil.WriteFile(path, []byte(pw+"\n"), 0o600); err != nil {
		return fmt.Errorf("serve: initial password: %w", err)
	}
	if err := db.Add(user, pw); err != nil {
		return err
	}
	log.Info("created first user", "user", user, "password_file", path)
	fmt.Fprintf(stdout, "\nFirst start: created user %s with password\n\n    %s\n\n(also in %s; change it with `postern user passwd %s`)\n\n", user, pw, path, user)
	return nil
}

// reload re-reads certificates and users on SIGHUP and `postern reload`;
// a failed reload keeps what was loaded before, and the error says what
// was kept.
func reload(log *slog.Logger, certs *tlsconf.Certs, db *userdb.DB) error {
	var errs []error
	if err := certs.Reload(); err != nil {
		log.Error("reload: certificate kept", "err", err)
		errs = append(errs, fmt.Errorf("certificate kept: %w", err))
	} else {
		log.Info("reload: certificate loaded")
	}
	if err := db.Reload(); err != nil {
		log.Error("reload: users kept", "err", err)
		errs = append(errs, fmt.Errorf("users kept: %w", err))
	} else {
		log.Info("reload: users loaded")
	}
	return errors.Join(errs...)
}

func httpHandler(withPprof bool) http.Handler {
	mux := http.NewServeMux()
	if withPprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(metrics.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	return mux
}

func newLogger(lc config.Log, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: lc.Level}
	if lc.Format == config.LogJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func roleOf(r config.Role) smtpd.Role {
	switch r {
	case config.RoleSubmission:
		return smtpd.RoleSubmission
	case config.RoleSubmissions:
		return smtpd.RoleSubmissions
	}
	return smtpd.RoleMX
}

func limitsOf(cfg *config.Config) smtpd.Limits {
	l := cfg.Limits
	failDelay := l.AuthFailDelay
	if failDelay == 0 { // "0s" in the file means no delay; smtpd reads 0 as its default
		failDelay = -1
	}
	return smtpd.Limits{
		MaxMessageSize: l.MaxMessageSize,
		MaxRecipients:  l.MaxRecipients,
		MaxErrors:      l.MaxErrors,
		CommandTimeout: l.CommandTimeout,
		DataTimeout:    l.DataTimeout,
		AuthFailDelay:  failDelay,
	}
}

func sendAsGrants(cfg *config.Config) map[string]userdb.SendAsGrant {
	out := make(map[string]userdb.SendAsGrant, len(cfg.SendAs))
	for user, g := range cfg.SendAs {
		out[user] = userdb.SendAsGrant{Addresses: g.Addresses, Domains: g.Domains}
	}
	return out
}

func domainOf(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return ""
	}
	return strings.ToLower(addr[i+1:])
}

// spoolAdapter hands the session's envelopes to the queue.
type spoolAdapter struct{ s *queue.Spool }

func (a spoolAdapter) Spool(ctx context.Context, env *smtpd.Envelope, data []byte) error {
	return a.s.Put(ctx, &queue.Envelope{
		ID: env.ID, From: env.From, Recipients: env.Recipients, SMTPUTF8: env.SMTPUTF8,
		Body: env.Body, AuthUser: env.AuthUser, Listener: env.Listener, Remote: env.Remote,
		Helo: env.Helo, ReceivedAt: env.ReceivedAt, RequireTLS: env.RequireTLS,
		Hold: env.Hold, HoldReason: env.HoldReason,
	}, data)
}

// localDelivery delivers a local recipient: it expands aliases and writes
// to each resulting mailbox's Maildir.
type localDelivery struct {
	dir     *userdb.Directory
	maildir *delivery.Maildir
}

func (d *localDelivery) Deliver(ctx context.Context, env *queue.Envelope, rcpt string, data []byte) error {
	boxes, err := d.dir.Resolve(rcpt)
	if errors.Is(err, userdb.ErrNotFound) {
		return queue.Permanent(err) // the user was deleted since RCPT
	}
	if err != nil {
		return err
	}
	for _, b := range boxes {
		err := d.maildir.Deliver(ctx, b, data)
		if errors.Is(err, delivery.ErrBadMailbox) {
			return queue.Permanent(err)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
