package server

import (
	"context"
	"crypto/tls"
	"errors"
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

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"postern"
	"postern/internal/acme"
	"postern/internal/addrkey"
	"postern/internal/admin"
	"postern/internal/admission"
	"postern/internal/check"
	"postern/internal/config"
	"postern/internal/delivery"
	"postern/internal/delivery/remote"
	"postern/internal/dns"
	"postern/internal/forward"
	"postern/internal/gctune"
	"postern/internal/handover"
	"postern/internal/logging"
	"postern/internal/metrics"
	"postern/internal/pkcs11"
	"postern/internal/queue"
	"postern/internal/smtpd"
	"postern/internal/spool"
	"postern/internal/tlsconf"
	"postern/internal/userdb"
)

// Params is what Run needs from the command that starts the server.
type Params struct {
	// Load reads the configuration: at start, and again at each reload
	// (SIGHUP, postern reload).
	Load func() (*config.Config, error)
	// AllowBrokenChain serves certificates that fail the chain checks
	// (emergencies only; logged at ERROR).
	AllowBrokenChain bool
	// Stdout gets the first start's password; Stderr the log.
	Stdout, Stderr io.Writer
	// Registry holds the server's metrics and is what /metrics serves;
	// nil means metrics.Registry, the process's. A process that runs
	// Run more than once (a test) gives each run a registry of its own:
	// a metric cannot be registered twice in one.
	Registry *prometheus.Registry
}

// LoggedError is an error the old process of a graceful restart has
// logged already: the command prints nothing more.
type LoggedError struct{ Err error }

// Error returns the error logged.
func (e LoggedError) Error() string { return e.Err.Error() }

// Unwrap returns the error logged.
func (e LoggedError) Unwrap() error { return e.Err }

// Run runs the server until SIGTERM or SIGINT, or until a graceful
// restart (SIGUSR2) has handed over to a new process; the end of ctx,
// once the server serves, stops it as SIGTERM does. It runs in named
// steps: the process (privileges, inherited sockets, data directory,
// secrets), the directory (keys, certificates, users), delivery and
// admission, the reloadable parts (live.go, built again by each
// reload), the sockets, then serve.
func Run(ctx context.Context, p Params) (err error) {
	// Until serve handles them: a reload or a restart asked meanwhile
	// must not end a process that is starting (the default for both).
	signal.Ignore(syscall.SIGHUP, syscall.SIGUSR2)
	child := handover.FromEnv() // started by a graceful restart
	defer func() {
		if err != nil && child.Fail(err) { // the old process logs err
			err = LoggedError{err}
		}
	}()
	cfg, err := p.Load()
	if err != nil {
		return err
	}
	if child == nil {
		if err := check.InUse(cfg); err != nil {
			return err
		}
	}
	defer gctune.Start(gctune.Headroom)() // GOGC from the heap's headroom
	b := newServeBase(cfg, p.Load, p.Stderr, p.Registry)
	b.stop = ctx.Done()
	defer b.closeAll()
	pre, err := b.prepare(child)
	if err != nil {
		return err
	}
	if err := b.openDirectory(p.AllowBrokenChain, p.Stdout); err != nil {
		return err
	}
	if err := b.openDelivery(); err != nil {
		return err
	}
	if err := b.startLive(); err != nil {
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
	pre.CloseUnused(b.log)
	return b.serve(child, socks)
}

// serveBase is what serve loads once: it outlives the spool, which a
// graceful restart closes and, when the new process fails, opens again.
// The reloadable parts (live) change with each reload; the rest keeps
// the configuration of the start (cfg).
type serveBase struct {
	cfg        *config.Config                 // as at start: what needs a restart keeps these values
	loadConfig func() (*config.Config, error) // for reload: the same file, read again
	sec        config.Secrets
	log        *slog.Logger
	level      *slog.LevelVar // log.level, which a reload changes
	events     *admin.Events
	tokens     *pkcs11.Tokens
	certs      *tlsconf.Certs
	tlsCfg     *tls.Config
	db         *userdb.DB
	dir        *userdb.Directory
	resolver   *dns.Client
	local      *delivery.Local
	fwd        *forward.Forwarder
	auth       *authSetup
	adm        *admissionSetup
	notify     *handover.Notifier
	started    time.Time // for the status page's uptime
	// budget bounds the message data of all listeners' sessions
	// (limits.max_data_in_flight, max_data_in_memory).
	budget   *smtpd.DataBudget
	restarts chan restartRequest // postern restart (restart.go)
	stop     <-chan struct{}     // Run's ctx: its end stands for SIGTERM
	version  postern.Build
	closers  []func() // closeAll calls them, the last first

	// The reloadable parts (live.go): the running servers and runner
	// read them through these, which applyLive swaps.
	mx, sub       smtpd.SwitchFilter
	remote        liveRemote
	guard         *liveGuard // nil when [abuse] enabled = false
	trace         *smtpd.Trace
	remoteMetrics *remote.Metrics
	queueMetrics  *queue.Metrics // every runner counts into it
	acmeMetrics   *acme.Metrics  // nil without ACME
	parts         partMetrics    // registered by newServeBase (metrics.go)
	live          atomic.Pointer[liveSet]
	registry      *prometheus.Registry     // the metrics' (Params.Registry)
	inst          atomic.Pointer[instance] // the instance serving, for reload
	reloading     sync.Mutex               // one reload (or start of an instance) at a time
}

// newServeBase returns the serveBase of cfg, logging to stderr at
// log.level.
func newServeBase(cfg *config.Config, load func() (*config.Config, error), stderr io.Writer, reg *prometheus.Registry) *serveBase {
	if reg == nil {
		reg = metrics.Registry
	}
	b := &serveBase{cfg: cfg, loadConfig: load, registry: reg, level: new(slog.LevelVar), events: admin.NewEvents(50), // recent deliveries and anomalies, for the status page
		started: time.Now(), trace: &smtpd.Trace{}, restarts: make(chan restartRequest), version: postern.ReadBuild()}
	b.level.Set(cfg.Log.Level)
	b.log = logging.New(cfg.Log.Format == config.LogJSON, b.level, stderr)
	b.notify = handover.NewNotifier(b.log)
	b.parts = newPartMetrics(reg, cfg)
	return b
}

// onClose adds f to what closeAll calls.
func (b *serveBase) onClose(f func()) { b.closers = append(b.closers, f) }

// closeAll closes what the steps opened, the last first.
func (b *serveBase) closeAll() {
	for i := len(b.closers) - 1; i >= 0; i-- {
		b.closers[i]()
	}
}

// prepare is the first step: systemd's sockets, binding as root, user
// and group, the data directory's owner and mode (privs.go); then the
// data directory and every *_file secret in use, read by the one rule.
func (b *serveBase) prepare(child *handover.Child) (*handover.Prebound, error) {
	pre, err := prepareProcess(b.cfg, b.log, child)
	if err != nil {
		return nil, err
	}
	b.onClose(pre.CloseAll)
	if err := os.MkdirAll(b.cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("serve: data directory: %w", err)
	}
	if b.sec, err = b.cfg.ReadSecrets(); err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	return pre, nil
}

// openDirectory is the second step: keys in PKCS#11 tokens
// (pkcs11.go), the certificates, the users (and the first user of the
// embedded default), and the directory of addresses.
func (b *serveBase) openDirectory(allowBroken bool, stdout io.Writer) (err error) {
	cfg := b.cfg
	b.tokens = newTokens(cfg, b.log, b.parts.pkcs11)
	b.onClose(func() { b.tokens.Close() })
	if b.certs, b.tlsCfg, err = setupTLS(cfg, b.log, allowBroken, b.tokens, b.parts.tls); err != nil {
		return err
	}
	if b.db, err = OpenUsers(cfg, b.log); err != nil {
		return err
	}
	b.onClose(func() { b.db.Close() })
	if cfg.Source == "" { // the embedded default
		if err := firstStart(cfg, b.db, stdout, b.log); err != nil {
			return err
		}
	}
	dcfg := directoryConfig(cfg)
	if err := dcfg.Validate(); err != nil {
		return err
	}
	b.dir = userdb.NewDirectory(b.db, dcfg)
	warnPostmasters(context.Background(), cfg, b.dir, b.log) // postmaster.go
	return nil
}

// openDelivery is the third step: the resolver, local delivery with
// forwarding, the checks of credentials, and the admission state.
func (b *serveBase) openDelivery() (err error) {
	cfg := b.cfg
	if b.resolver, err = NewResolver(cfg); err != nil {
		return err
	}
	if b.fwd, err = newForwarder(cfg, b.dir, b.log); err != nil { // aliases to other domains, SRS (internal/forward)
		return err
	}
	b.local = &delivery.Local{Aliases: b.fwd, Maildir: &delivery.Maildir{Root: cfg.MailDir()}}
	if cfg.LMTP.Address != "" {
		b.local = &delivery.Local{Aliases: b.fwd, LMTP: &delivery.LMTP{Network: cfg.LMTP.Network, Address: cfg.LMTP.Address, Hostname: cfg.Hostname}}
	}
	if b.auth, err = newAuthSetup(cfg, b.sec, b.db, b.certs); err != nil {
		return err
	}
	if b.adm, err = newAdmission(cfg, b.sec, b.log, b.events, b.parts); err != nil { // gate, abuse engine, send limits (admission.go)
		return err
	}
	b.onClose(func() { b.adm.Close() })
	if e, ok := b.adm.guard.(*admission.Engine); ok {
		b.guard = &liveGuard{}
		b.guard.e.Store(e)
	}
	b.budget = smtpd.NewDataBudget(dataBudgetOptions(cfg))
	return nil
}

// startLive is the fourth step: the reloadable parts, built as a reload
// builds them (live.go), and the metrics of the features on.
func (b *serveBase) startLive() error {
	set, err := b.buildLive(config.Effective(b.cfg, b.cfg), b.sec)
	if err != nil {
		return err
	}
	fm := registerMetrics(b.registry, b.cfg, set.sub != nil) // metrics.go
	b.remoteMetrics, b.queueMetrics, b.acmeMetrics = fm.remote, fm.queue, fm.acme
	set.out.Metrics = fm.remote
	for _, k := range set.keys {
		b.log.Info("DKIM key loaded", "domain", k.Domain, "selector", k.Selector, "algorithm", string(k.Algorithm()))
	}
	b.applyLive(set, nil)
	b.onClose(b.remote.close)
	return nil
}

// serve is the last step: it handles the signals, takes over from the
// old process of a graceful restart (child), opens the spool and serves
// on socks until the process is to end.
func (b *serveBase) serve(child *handover.Child, socks *handover.Sockets) error {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR2)
	defer signal.Stop(sigs)
	retry := false // the spool may still be held: retry opening it
	if child != nil {
		// The old process stops accepting now, lets its sessions end
		// and releases the spool.
		child.Ready(b.log)
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
		return check.SpoolError(b.cfg, err)
	}
	return b.run(spool, socks, child, sigs)
}

// openSpool opens the spool in the data directory.
func (b *serveBase) openSpool() (*spool.Spool, error) {
	o := spoolOptions(b.cfg)
	o.Logger, o.Metrics = b.log, b.parts.spool
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
		inst, err := b.startLocked(spool, socks)
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
			lim := b.live.Load().cfg.Limits // as reloaded
			old := &handover.Old{
				Log: b.log, Drain: inst.drain, DrainTimeout: lim.RestartDrainTimeout,
				Stop: func() {
					b.log.Info("shutting down", "signal", "SIGUSR2", "deadline", lim.ShutdownTimeout)
					inst.stop(lim.ShutdownTimeout)
					if err := spool.Close(); err != nil {
						b.log.Error("graceful restart: closing the spool", "err", err)
					}
				},
				Signals: sigs, Reload: b.reload, Stopping: b.notify.Stopping,
			}
			return old.HandOver(r)
		default: // SIGTERM, SIGINT
			timeout := b.live.Load().cfg.Limits.ShutdownTimeout // as reloaded
			b.log.Info("shutting down", "signal", sig.String(), "deadline", timeout)
			b.notify.Stopping()
			inst.stop(timeout)
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
	runner     *queue.Runner
	runnerDone chan error
	servers    []*smtpd.Server
	serving    sync.WaitGroup // the servers' Serve calls
	httpSrv    *http.Server
	adminHTTP  *http.Server
	autoconf   *http.Server // [autoconfig] (autoconfig.go)
	adminSrv   *admin.Server
}

// startLocked is start, as the instance reloads reach: no reload runs
// meanwhile, so the instance starts with the parts of the last one.
func (b *serveBase) startLocked(spool *spool.Spool, socks *handover.Sockets) (*instance, error) {
	b.reloading.Lock()
	defer b.reloading.Unlock()
	in, err := b.start(spool, socks)
	if err == nil {
		b.inst.Store(in)
	}
	return in, err
}

// start serves on spool with the sockets in socks, which it takes: a
// server closes each when it stops. It starts the queue runner, makes
// the SMTP servers, starts TLS's and ACME's background work, the HTTP
// endpoints and the admin API, then serves SMTP.
func (b *serveBase) start(spool *spool.Spool, socks *handover.Sockets) (in *instance, err error) {
	ctx, cancel := context.WithCancel(context.Background())
	in = &instance{log: b.log, cancel: cancel, runnerDone: make(chan error, 1)}
	b.fwd.SetSpool(spool) // forwarded copies go in this spool
	defer func() {
		if err != nil {
			in.abort()
		}
	}()
	live := b.live.Load()
	b.startRunner(ctx, in, spool, live)
	listeners, err := b.smtpServers(in, spool, socks, live)
	if err != nil {
		return in, err
	}
	if err := runTLS(ctx, b.cfg, b.certs, in.servers, b.adm.redis, b.log); err != nil {
		return in, err
	}
	if err := startACME(ctx, b.cfg, b.certs, b.log, socks.Listen, b.acmeMetrics); err != nil { // [acme] (acme.go)
		return in, err
	}
	if err := b.startAdmin(in, spool, listeners, socks); err != nil {
		return in, err
	}
	if in.autoconf, err = startAutoconfig(b.cfg, b.tlsCfg, socks.Listen, b.log, b.parts.autoconf); err != nil { // autoconfig.go
		return in, err
	}
	b.serveSMTP(in, listeners)
	// Last: /healthz answering says the server serves, admin socket
	// included, to a load balancer or a script waiting for it.
	if httpL := b.startHTTP(in, socks); httpL != nil {
		b.log.Info("listening", "listener", "http", "address", httpL.Addr().String())
	}
	metrics.SetBuildInfo(b.version.Version, b.version.ShortRevision(), b.version.GoVersion)
	b.log.Info("postern ready", "version", b.version.Version, "revision", b.version.ShortRevision(), "hostname", b.cfg.Hostname, "data", b.cfg.DataDir)
	return in, nil
}

// startRunner starts the queue runner on spool, with the retry schedule
// of live.
func (b *serveBase) startRunner(ctx context.Context, in *instance, spool *spool.Spool, live *liveSet) {
	in.runner = queue.NewRunner(spool, queue.RunnerOptions{
		Local:       b.local,
		RemoteBatch: &b.remote,
		IsLocal:     func(addr string) bool { return b.dir.IsLocalDomain(addrkey.DomainOf(addr)) },
		Workers:     b.cfg.Delivery.Workers, // concurrent Maildir fsyncs share ext4 journal commits (docs/performance.md)
		Policy:      live.policy,
		Hostname:    b.cfg.Hostname,
		Logger:      b.log,
		Observe:     b.events.Delivery, // the status page (observe.go)
		Metrics:     b.queueMetrics,
	})
	go func() { in.runnerDone <- in.runner.Run(ctx) }()
}

// smtpServers makes the SMTP server of each listener, with the limits of
// live, and returns the listeners they are to serve on.
func (b *serveBase) smtpServers(in *instance, spool *spool.Spool, socks *handover.Sockets, live *liveSet) ([]net.Listener, error) {
	cfg := b.cfg
	var guard smtpd.AuthGuard // nil, not a nil *liveGuard, without [abuse]
	if b.guard != nil {
		guard = b.guard
	}
	var listeners []net.Listener
	for _, lc := range cfg.Listeners {
		l := proxyListener(cfg, lc, socks.Get(lc.Name)) // PROXY protocol (screen.go)
		listeners = append(listeners, l)
		ltls, err := listenerTLS(b.tlsCfg, cfg, lc)
		if err != nil {
			return nil, err
		}
		filter := &b.sub
		if lc.Role == config.RoleMX {
			filter = &b.mx
		}
		in.servers = append(in.servers, &smtpd.Server{
			Filter:            filter,
			Name:              lc.Name,
			Role:              roleOf(lc.Role),
			Hostname:          cfg.Hostname,
			TLSConfig:         ltls,
			Limits:            live.limits,
			Directory:         b.fwd.Directory(), // SRS addresses for bounces (internal/forward)
			Auth:              b.auth.mechanisms(lc),
			Spool:             acceptObserver{b.intake(spool), b.events}, // observe.go; direct.go
			Budget:            b.budget,
			Logger:            b.log,
			PostmasterAddress: cfg.Postmaster,
			Screen:            screenOf(lc, b.resolver, b.adm.store), // greet_delay, dnsbl (screen.go)
			Admitter:          b.adm.gate,
			AuthGuard:         guard,
			SendLimiter:       b.adm.limiter,
			Trace:             b.trace,
			Milters:           miltersOf(cfg, lc.Role), // [[milter]] (milter.go)
		})
	}
	return listeners, nil
}

// startHTTP serves the metrics and health endpoint, when http.address is
// set, and returns its listener.
func (b *serveBase) startHTTP(in *instance, socks *handover.Sockets) net.Listener {
	if b.cfg.HTTP.Address == "" {
		return nil
	}
	l := socks.Get("http")
	in.httpSrv = &http.Server{Handler: httpHandler(b.cfg.HTTP.Pprof, b.registry), ReadHeaderTimeout: 10 * time.Second}
	go in.httpSrv.Serve(l)
	return l
}

// startAdmin serves the admin API (postern queue ...) on DATA/admin.sock,
// mode 0600, and over HTTPS when admin.http_address is set.
func (b *serveBase) startAdmin(in *instance, spool *spool.Spool, listeners []net.Listener, socks *handover.Sockets) error {
	cfg, log := b.cfg, b.log
	adminL, err := adminListen(cfg, cfg.AdminSocket()) // admin.socket_group (adminhttp.go)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	adminSrv := &admin.Server{Spool: spool, Runner: in.runner, Bans: b.adm.store, Logger: log.With("listener", "admin"),
		Local: localSubmit(cfg, spool, &b.sub, b.adm.limiter, b.dir)} // postern sendmail (localsubmit.go)
	adminSrv.Reload = b.reloadAll                                                         // postern reload (reload.go)
	adminSrv.ReloadUsers = b.db.Reload                                                    // postern user (cmd/postern)
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
	return err
}

// serveSMTP serves each SMTP server on its listener.
func (b *serveBase) serveSMTP(in *instance, listeners []net.Listener) {
	for i, s := range in.servers {
		in.serving.Add(1)
		go func(s *smtpd.Server, l net.Listener) {
			defer in.serving.Done()
			if err := s.Serve(l); err != nil && !errors.Is(err, smtpd.ErrServerClosed) {
				b.log.Error("listener stopped", "listener", s.Name, "err", err)
			}
		}(s, listeners[i])
		b.log.Info("listening", "listener", s.Name, "role", b.cfg.Listeners[i].Role, "address", listeners[i].Addr().String())
	}
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
// "acme-http-01" or "acme-tls-alpn-01" (config.Sockets). A graceful
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
	for _, sock := range cfg.Sockets() {
		if err := add(sock.Name, sock.Address, sock.What); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// firstStart creates postmaster@localhost with a random password on the
// embedded default's first start, writes it to DATA/initial-password and
// prints it once.
func firstStart(cfg *config.Config, db *userdb.DB, stdout io.Writer, log *slog.Logger) error {
	user, path := cfg.Postmaster, filepath.Join(cfg.DataDir, "initial-password")
	pw, err := db.CreateFirstUser(context.Background(), user, path)
	if err != nil || pw == "" {
		return err
	}
	log.Info("created first user", "user", user, "password_file", path)
	fmt.Fprintf(stdout, "\nFirst start: created user %s with password\n\n    %s\n\n(also in %s; change it with `postern user passwd %s`)\n\n", user, pw, path, user)
	return nil
}

func httpHandler(withPprof bool, reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	if withPprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	return mux
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
