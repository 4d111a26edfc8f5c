package main

import (
	"context"
	"crypto/tls"
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
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"postern"
	"postern/internal/acme"
	"postern/internal/addrkey"
	"postern/internal/admin"
	"postern/internal/check"
	"postern/internal/config"
	"postern/internal/delivery"
	"postern/internal/delivery/remote"
	"postern/internal/dns"
	"postern/internal/fsutil"
	"postern/internal/gctune"
	"postern/internal/handover"
	"postern/internal/logging"
	"postern/internal/metrics"
	"postern/internal/queue"
	"postern/internal/smtp"
	"postern/internal/smtpd"
	"postern/internal/spool"
	"postern/internal/tlsconf"
	"postern/internal/userdb"
)

// serveFlags is `postern serve`.
func serveFlags(c *cli, fs *flag.FlagSet) func([]string) error {
	cf := c.configFlags(fs)
	allowBroken := fs.Bool("allow-broken-chain", false, "serve certificates that fail the chain checks (emergencies only; logged at ERROR)")
	return func([]string) error { return cmdServe(cf, *allowBroken, c.stdout, c.stderr) }
}

// cmdServe runs the server until SIGTERM or SIGINT, or until a graceful
// restart (SIGUSR2) has handed over to a new process.
func cmdServe(cf *configFlags, allowBroken bool, stdout, stderr io.Writer) (err error) {
	// Until serve handles them: a reload or a restart asked meanwhile
	// must not end a process that is starting (the default for both).
	signal.Ignore(syscall.SIGHUP, syscall.SIGUSR2)
	child := handover.FromEnv() // started by a graceful restart
	defer func() {
		if err != nil && child.Fail(err) { // the old process logs err
			err = loggedError{err}
		}
	}()
	cfg, err := cf.load()
	if err != nil {
		return err
	}
	if child == nil {
		if err := check.InUse(cfg); err != nil {
			return err
		}
	}
	defer gctune.Start(gctune.Headroom)() // GOGC from the heap's headroom
	log := newLogger(cfg.Log, stderr)
	events := admin.NewEvents(50) // an observer: recent deliveries and anomalies, for the status page
	// systemd's sockets, binding as root, user and group, the data
	// directory's owner and mode (privs.go).
	pre, err := prepareProcess(cfg, log, child)
	if err != nil {
		return err
	}
	defer pre.CloseAll()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("serve: data directory: %w", err)
	}

	sec, err := cfg.ReadSecrets() // every *_file secret in use, by the one rule
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	tokens := newTokens(cfg, log) // keys in PKCS#11 tokens (pkcs11.go)
	defer tokens.Close()
	certs, tlsCfg, err := setupTLS(cfg, log, allowBroken, tokens)
	if err != nil {
		return err
	}
	db, err := openUsers(cfg, log)
	if err != nil {
		return err
	}
	defer db.Close()
	if cfg.Source == "" { // the embedded default
		if err := firstStart(cfg, db, stdout, log); err != nil {
			return err
		}
	}
	dcfg := directoryConfig(cfg)
	if err := dcfg.Validate(); err != nil {
		return err
	}
	dir := userdb.NewDirectory(db, dcfg)
	warnPostmasters(context.Background(), cfg, dir, log) // postmaster.go

	resolver, err := newResolver(cfg)
	if err != nil {
		return err
	}
	planner, err := newPlanner(cfg, resolver, log)
	if err != nil {
		return err
	}
	mxFilter, subFilter, err := mailAuthFilters(cfg, resolver, dir.IsLocalDomain, log, tokens)
	if err != nil {
		return err
	}
	fm := registerMetrics(metrics.Registry, cfg, subFilter != nil) // metrics.go
	out, err := newRemote(cfg, sec, planner, log)
	if err != nil {
		return err
	}
	out.Metrics = fm.remote
	defer out.Close()
	fwd, err := newForwarder(cfg, dir, log) // aliases to other domains, SRS (forward.go)
	if err != nil {
		return err
	}
	var local queue.Deliverer = &localDelivery{fwd: fwd, maildir: &delivery.Maildir{Root: cfg.MailDir()}}
	if cfg.LMTP.Address != "" {
		local = &lmtpLocal{fwd: fwd, lmtp: &delivery.LMTP{Network: cfg.LMTP.Network, Address: cfg.LMTP.Address, Hostname: cfg.Hostname}}
	}
	auth, err := newAuthSetup(cfg, sec, db, certs)
	if err != nil {
		return err
	}
	adm, err := newAdmission(cfg, sec, log, events) // gate, abuse engine, send limits (admission.go)
	if err != nil {
		return err
	}
	defer adm.Close()
	trace, err := newTrace(cfg) // [log] trace, reloaded with the configuration (trace.go)
	if err != nil {
		return err
	}
	// Every socket is bound (or taken from systemd or the old process)
	// before serving any, and before a graceful restart's new process
	// says it is ready: a port already taken fails the start while the
	// old process still serves.
	socks, err := bindSockets(cfg, pre.Listen)
	if err != nil {
		return err
	}
	pre.CloseUnused(log)
	b := &serveBase{
		cfg: cfg, sec: sec, log: log, events: events, certs: certs, tlsCfg: tlsCfg, db: db, dir: dir,
		resolver: resolver, mxFilter: mxFilter, subFilter: subFilter, out: out, local: local, fwd: fwd,
		auth: auth, adm: adm, notify: handover.NewNotifier(log), started: time.Now(),
		trace: trace, loadConfig: cf.load, acmeMetrics: fm.acme,
		budget:   smtpd.NewDataBudget(dataBudgetOptions(cfg)),
		restarts: make(chan restartRequest), version: postern.ReadBuild(),
	}

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR2)
	defer signal.Stop(sigs)
	retry := false // the spool may still be held: retry opening it
	if child != nil {
		// The old process stops accepting now, lets its sessions end
		// and releases the spool.
		child.Ready(log)
		released, err := child.AwaitRelease(sigs, b.reload)
		if err != nil {
			socks.Close()
			return fmt.Errorf("serve: %w", err)
		}
		retry = !released
	}
	spool, err := handover.RetryOpen(retry, b.openSpool)
	if err != nil {
		socks.Close()
		return check.SpoolError(cfg, err)
	}
	return b.run(spool, socks, child, sigs)
}

// serveBase is what serve loads once: it outlives the spool, which a
// graceful restart closes and, when the new process fails, opens again.
type serveBase struct {
	cfg                 *config.Config
	sec                 config.Secrets
	log                 *slog.Logger
	events              *admin.Events
	certs               *tlsconf.Certs
	tlsCfg              *tls.Config
	db                  *userdb.DB
	dir                 *userdb.Directory
	resolver            *dns.Client
	mxFilter, subFilter smtpd.Filter
	out                 *remote.Deliverer
	local               queue.Deliverer
	fwd                 *forwarder
	auth                *authSetup
	adm                 *admissionSetup
	notify              *handover.Notifier
	started             time.Time // for the status page's uptime
	trace               *smtpd.Trace
	loadConfig          func() (*config.Config, error) // for reload: the trace list
	acmeMetrics         *acme.Metrics                  // nil without ACME
	// budget bounds the message data of all listeners' sessions
	// (limits.max_data_in_flight, max_data_in_memory).
	budget   *smtpd.DataBudget
	restarts chan restartRequest // postern restart (restart.go)
	version  postern.Build
}

// reload reloads the certificates, the users and the trace list, as on
// SIGHUP (which logs what was kept).
func (b *serveBase) reload() { b.reloadAll() }

// reloadAll is reload for `postern reload`: the error says what was kept.
func (b *serveBase) reloadAll() error {
	return errors.Join(reload(b.log, b.certs, b.db), reloadTrace(b.log, b.loadConfig, b.trace))
}

// openSpool opens the spool in the data directory.
func (b *serveBase) openSpool() (*spool.Spool, error) {
	o := spoolOptions(b.cfg)
	o.Logger = b.log
	return spool.Open(o)
}

// run serves on spool and socks until the process is to end: after
// SIGTERM or SIGINT, or once a graceful restart has handed over to a new
// process. When a graceful restart fails after the handover began, it
// opens the spool again and serves on the sockets kept. child, when not
// nil, is told once this process serves.
func (b *serveBase) run(spool *spool.Spool, socks *handover.Sockets, child *handover.Child, sigs chan os.Signal) error {
	var failed error // the graceful restart that failed, when serving again
	for {
		inst, err := b.start(spool, socks)
		if err != nil {
			socks.Close()
			spool.Close()
			if failed != nil {
				err = fmt.Errorf("serve: graceful restart failed (%v), and serving again failed: %w", failed, err)
			}
			return err
		}
		if failed != nil {
			b.log.Error("graceful restart failed: serving again", "err", failed)
		}
		b.notify.Ready()
		if child != nil {
			// systemd must know the new main process before the old
			// one exits (step 4 of the hand-over).
			if err := b.notify.Barrier(handover.BarrierTimeout); err != nil {
				b.log.Warn("graceful restart: systemd did not confirm the new main process", "err", err)
			}
			child.Serving()
			child = nil
		}
		next, cause := b.serveUntil(inst, spool, socks, sigs)
		if next == nil {
			if cause == nil {
				b.log.Info("postern stopped")
			}
			return cause
		}
		socks, failed = next, cause
		if spool, err = b.openSpool(); err != nil {
			socks.Close()
			b.notify.Stopping()
			return fmt.Errorf("serve: graceful restart failed (%v), and the spool does not open again: %w", failed, err)
		}
	}
}

// serveUntil handles the signals while inst serves. It returns nil, nil
// after a shutdown or a graceful restart that handed over; and the
// sockets to serve on again, with the cause, after a graceful restart
// that failed once the handover began.
func (b *serveBase) serveUntil(inst *instance, spool *spool.Spool, socks *handover.Sockets, sigs chan os.Signal) (*handover.Sockets, error) {
	for {
		sig, req := b.nextSignal(sigs) // a signal, or a restart asked over the admin API
		switch sig {
		case syscall.SIGHUP:
			b.notify.Reloading("reloading")
			b.reload()
			b.notify.Ready()
		case syscall.SIGUSR2: // graceful restart: a new process takes the sockets (internal/handover)
			if os.Getpid() == 1 {
				// PID 1 of a container: when it exits, the kernel ends
				// every process of its PID namespace, the new one too.
				b.log.Warn("graceful restart refused: Postern is PID 1 (a container's init), and its exit would end the new process; replace the container instead")
				req.reply(0, errors.New("refused: Postern is PID 1 (a container's init); replace the container instead"))
				continue
			}
			b.notify.Reloading("graceful restart")
			r, err := handover.Start(b.log, socks)
			if err == nil {
				err = r.WaitReady(handover.ReadyTimeout)
			}
			if err != nil {
				b.log.Error("graceful restart failed: still serving", "err", err)
				b.notify.Ready()
				req.reply(0, err)
				continue
			}
			req.reply(r.Pid(), nil)
			b.log.Info("graceful restart: new process ready; handing over", "pid", r.Pid())
			old := &handover.Old{
				Log: b.log, Drain: inst.drain, DrainTimeout: b.cfg.Limits.RestartDrainTimeout,
				Stop: func() {
					b.log.Info("shutting down", "signal", "SIGUSR2", "deadline", b.cfg.Limits.ShutdownTimeout)
					inst.stop(b.cfg.Limits.ShutdownTimeout)
					if err := spool.Close(); err != nil {
						b.log.Error("graceful restart: closing the spool", "err", err)
					}
				},
				Signals: sigs, Reload: b.reload, Stopping: b.notify.Stopping,
			}
			return old.HandOver(r)
		default: // SIGTERM, SIGINT
			b.log.Info("shutting down", "signal", sig.String(), "deadline", b.cfg.Limits.ShutdownTimeout)
			b.notify.Stopping()
			inst.stop(b.cfg.Limits.ShutdownTimeout)
			return nil, spool.Close()
		}
	}
}

// instance is what serves on an open spool: the queue runner, the SMTP
// servers, the HTTP endpoints, the admin API and the background work of
// TLS and ACME.
type instance struct {
	log        *slog.Logger
	cancel     context.CancelFunc
	runnerDone chan error
	servers    []*smtpd.Server
	serving    sync.WaitGroup // the servers' Serve calls
	httpSrv    *http.Server
	adminHTTP  *http.Server
	autoconf   *http.Server // [autoconfig] (autoconfig.go)
	adminSrv   *admin.Server
}

// start serves on spool with the sockets in socks, which it takes: a
// server closes each when it stops.
func (b *serveBase) start(spool *spool.Spool, socks *handover.Sockets) (in *instance, err error) {
	cfg, log := b.cfg, b.log
	ctx, cancel := context.WithCancel(context.Background())
	in = &instance{log: log, cancel: cancel, runnerDone: make(chan error, 1)}
	b.fwd.spool.Store(spool) // forwarded copies go in this spool
	defer func() {
		if err != nil {
			in.abort()
		}
	}()
	runner := queue.NewRunner(spool, queue.RunnerOptions{
		Local:       b.local,
		RemoteBatch: remoteBatch{b.out},
		IsLocal:     func(addr string) bool { return b.dir.IsLocalDomain(addrkey.DomainOf(addr)) },
		Workers:     cfg.Delivery.Workers, // concurrent Maildir fsyncs share ext4 journal commits (docs/performance.md)
		Policy:      retryPolicy(cfg),
		Hostname:    cfg.Hostname,
		Logger:      log,
		Observe:     b.events.Delivery, // the status page (observe.go)
	})
	go func() { in.runnerDone <- runner.Run(ctx) }()

	var listeners []net.Listener
	for _, lc := range cfg.Listeners {
		l := proxyListener(cfg, lc, socks.Get(lc.Name)) // PROXY protocol (screen.go)
		listeners = append(listeners, l)
		ltls, err := listenerTLS(b.tlsCfg, cfg, lc)
		if err != nil {
			return in, err
		}
		var filter smtpd.Filter = b.subFilter
		if lc.Role == config.RoleMX {
			filter = b.mxFilter
		}
		in.servers = append(in.servers, &smtpd.Server{
			Filter:            filter,
			Name:              lc.Name,
			Role:              roleOf(lc.Role),
			Hostname:          cfg.Hostname,
			TLSConfig:         ltls,
			Limits:            limitsOf(cfg),
			Directory:         b.fwd.directory(), // SRS addresses for bounces (forward.go)
			Auth:              b.auth.mechanisms(lc),
			Spool:             acceptObserver{spool, b.events}, // observe.go
			Budget:            b.budget,
			Logger:            log,
			PostmasterAddress: cfg.Postmaster,
			Screen:            screenOf(lc, b.resolver, b.adm.store), // greet_delay, dnsbl (screen.go)
			Admitter:          b.adm.gate,
			AuthGuard:         b.adm.guard,
			SendLimiter:       b.adm.limiter,
			Trace:             b.trace,
			Milters:           miltersOf(cfg, lc.Role), // [[milter]] (milter.go)
		})
	}
	if err := runTLS(ctx, cfg, b.certs, in.servers, b.adm.redis, log); err != nil {
		return in, err
	}
	if err := startACME(ctx, cfg, b.certs, log, socks.Listen, b.acmeMetrics); err != nil { // [acme] (acme.go)
		return in, err
	}
	var httpL net.Listener
	if cfg.HTTP.Address != "" {
		httpL = socks.Get("http")
		in.httpSrv = &http.Server{Handler: httpHandler(cfg.HTTP.Pprof), ReadHeaderTimeout: 10 * time.Second}
		go in.httpSrv.Serve(httpL)
	}
	// The admin API (postern queue ...) on DATA/admin.sock, mode 0600.
	adminL, err := adminListen(cfg, cfg.AdminSocket()) // admin.socket_group (adminhttp.go)
	if err != nil {
		return in, fmt.Errorf("serve: %w", err)
	}
	adminSrv := &admin.Server{Spool: spool, Runner: runner, Bans: b.adm.store, Logger: log.With("listener", "admin"),
		Local: localSubmit(cfg, spool, b.subFilter, b.adm.limiter, b.dir)} // postern sendmail (sendmail.go)
	adminSrv.Reload = b.reloadAll                                                         // postern reload
	adminSrv.ReloadUsers = b.db.Reload                                                    // postern user (user.go)
	adminSrv.Restart, adminSrv.Version = b.requestRestart, b.version.String()             // postern restart (restart.go)
	adminSrv.Certs, adminSrv.Events = b.certs, b.events                                   // the status page
	adminSrv.Started, adminSrv.Listeners = b.started, listenerInfo(cfg, listeners, socks) // observe.go
	in.adminSrv = adminSrv
	go func() {
		if err := adminSrv.Serve(adminL); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin socket stopped", "err", err)
		}
	}()
	log.Info("listening", "listener", "admin", "address", adminL.Addr().String())
	in.adminHTTP, err = startAdminHTTP(cfg, b.sec.AdminToken, adminSrv, b.tlsCfg, socks.Listen, log) // admin.http_address (adminhttp.go)
	if err != nil {
		return in, err
	}
	if in.autoconf, err = startAutoconfig(cfg, b.tlsCfg, socks.Listen, log); err != nil { // autoconfig.go
		return in, err
	}

	for i, s := range in.servers {
		in.serving.Add(1)
		go func(s *smtpd.Server, l net.Listener) {
			defer in.serving.Done()
			if err := s.Serve(l); err != nil && !errors.Is(err, smtpd.ErrServerClosed) {
				log.Error("listener stopped", "listener", s.Name, "err", err)
			}
		}(s, listeners[i])
		log.Info("listening", "listener", s.Name, "role", cfg.Listeners[i].Role, "address", listeners[i].Addr().String())
	}
	if httpL != nil {
		log.Info("listening", "listener", "http", "address", httpL.Addr().String())
	}
	metrics.SetBuildInfo(b.version.Version, b.version.ShortRevision(), b.version.GoVersion)
	log.Info("postern ready", "version", b.version.Version, "revision", b.version.ShortRevision(), "hostname", cfg.Hostname, "data", cfg.DataDir)
	return in, nil
}

// drain stops accepting SMTP connections and lets the sessions go on
// until they have all ended or ctx ends; it reports whether they all
// ended.
func (in *instance) drain(ctx context.Context) bool {
	var wg sync.WaitGroup
	var left atomic.Bool
	for _, s := range in.servers {
		wg.Go(func() {
			if s.Drain(ctx) != nil {
				left.Store(true)
			}
		})
	}
	wg.Wait()
	return !left.Load()
}

// stop shuts everything down as on SIGTERM: the SMTP sessions waiting
// for a command get 421 4.3.2, and at timeout the rest are cut; then the
// HTTP endpoints, the admin API and the queue runner stop.
func (in *instance) stop(timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, s := range in.servers {
		wg.Go(func() {
			if err := s.Shutdown(ctx); err != nil {
				in.log.Warn("sessions cut at shutdown deadline", "listener", s.Name, "err", err)
			}
		})
	}
	wg.Wait()
	in.serving.Wait()
	if in.httpSrv != nil {
		in.httpSrv.Shutdown(ctx)
	}
	if in.adminHTTP != nil {
		in.adminHTTP.Shutdown(ctx)
	}
	if in.autoconf != nil {
		in.autoconf.Shutdown(ctx)
	}
	in.adminSrv.Shutdown(ctx) // closes the socket: DATA/admin.sock is removed
	in.cancel()
	<-in.runnerDone
}

// abort undoes a start that failed half-way.
func (in *instance) abort() {
	if in.httpSrv != nil {
		in.httpSrv.Close()
	}
	if in.adminHTTP != nil {
		in.adminHTTP.Close()
	}
	if in.autoconf != nil {
		in.autoconf.Close()
	}
	if in.adminSrv != nil {
		in.adminSrv.Shutdown(context.Background())
	}
	in.cancel()
	<-in.runnerDone
}

// bindSockets gets every socket the configuration names from listen.
//
// The sockets are the listening TCP sockets serve serves on, by name:
// the [[listener]]s by their names, and "http", "admin", "autoconfig",
// "acme-http-01" or "acme-tls-alpn-01" (extraListeners). A graceful
// restart passes them all to the new process.
func bindSockets(cfg *config.Config, listen func(name, addr string) (net.Listener, error)) (*handover.Sockets, error) {
	s := &handover.Sockets{}
	add := func(name, addr, what string) error {
		l, err := listen(name, addr)
		if err != nil {
			s.Close()
			return check.ListenError(what, addr, err)
		}
		s.Add(name, l)
		return nil
	}
	for _, lc := range cfg.Listeners {
		if err := add(lc.Name, lc.Address, "listener "+lc.Name); err != nil {
			return nil, err
		}
	}
	extra := extraListeners(cfg)
	for _, x := range []struct{ name, key string }{
		{"http", "http"},
		{"admin", "admin.http_address"},
		{"autoconfig", "autoconfig.address"},
		{"acme-http-01", "acme.http_address"},
		{"acme-tls-alpn-01", "acme.tls_alpn_address"},
	} {
		if addr, ok := extra[x.name]; ok {
			if err := add(x.name, addr, x.key); err != nil {
				return nil, err
			}
		}
	}
	return s, nil
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
	opts := &slog.HandlerOptions{Level: lc.Level, ReplaceAttr: logging.DurationSeconds}
	if lc.Format == config.LogJSON {
		return slog.New(logging.LazyAttrs(slog.NewJSONHandler(w, opts)))
	}
	return slog.New(logging.LazyAttrs(slog.NewTextHandler(w, opts)))
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

// localDelivery delivers a local recipient: it expands aliases
// (forwarding what goes to other domains: forward.go) and writes to each
// resulting mailbox's Maildir.
type localDelivery struct {
	fwd     *forwarder
	maildir *delivery.Maildir
}

func (d *localDelivery) Deliver(ctx context.Context, env *smtp.Envelope, rcpt string, msg *smtp.Message) error {
	boxes, err := d.fwd.expand(ctx, env, rcpt, msg)
	if err != nil {
		return err
	}
	for _, b := range boxes {
		err := d.maildir.DeliverMessage(ctx, b, env.From, msg)
		if errors.Is(err, delivery.ErrBadMailbox) {
			return queue.Permanent(err)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
