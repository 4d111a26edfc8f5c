package server

// postern reload and SIGHUP: read the configuration file again and apply
// what can change live (live.go), name what needs a restart, reload the
// certificates and the users; refuse an invalid file whole.

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"postern/internal/admin"
	"postern/internal/config"
	"postern/internal/tlsconf"
	"postern/internal/userdb"
)

// RefusedPrefix starts the error of a refused configuration file in a
// reload's report, by which `postern reload` tells it from the errors of
// certificates and users.
const RefusedPrefix = "configuration refused, the running one serves on: "

// reload reads the configuration again and applies it, and reloads the
// certificates and the users, for SIGHUP (which logs the report).
func (b *serveBase) reload() { b.reloadAll() }

// reloadAll is reload for `postern reload`: the report says what
// changed, what needs a restart, and what was refused or kept. One
// reload runs at a time.
func (b *serveBase) reloadAll() admin.ReloadReport {
	b.reloading.Lock()
	defer b.reloading.Unlock()
	rep := admin.ReloadReport{Config: b.cfg.Source}
	if err := b.reloadConfig(&rep); err != nil {
		b.log.Error("reload: configuration refused; the running one serves on", "err", err)
		rep.Errors = append(rep.Errors, RefusedPrefix+err.Error())
	}
	for _, e := range reloadFiles(b.log, b.certs, b.db, &rep) {
		rep.Errors = append(rep.Errors, e.Error())
	}
	b.log.Info("reload done", "changed", len(rep.Changed), "needs_restart", len(rep.NeedsRestart), "errors", len(rep.Errors))
	return rep
}

// reloadConfig reads the configuration file, builds the reloadable parts
// from it and, when all of them build, applies them and adds what
// changed to rep. On error nothing changed.
func (b *serveBase) reloadConfig(rep *admin.ReloadReport) error {
	next, err := b.loadConfig()
	if err != nil {
		return err
	}
	sec, err := next.ReadSecrets()
	if err != nil {
		return err
	}
	eff := config.Effective(b.cfg, next)
	set, err := b.buildLive(eff, sec)
	if err != nil {
		return err
	}
	changed, restart := reloadChanges(b.live.Load(), set, b.cfg, b.sec, next)
	// Logged at the log level in use until now, which may change.
	for _, c := range changed {
		b.log.Info("reload: changed", "key", c.Key, "old", c.Old, "new", c.New)
	}
	for _, c := range restart {
		b.log.Warn("reload: needs a restart, not applied", "key", c.Key, "old", c.Old, "new", c.New)
	}
	b.applyLive(set, b.inst.Load())
	rep.Changed, rep.NeedsRestart = changed, restart
	return nil
}

// reloadChanges compares what runs (cur, and the configuration and
// secrets of the start) with what a reload builds (next, from the file
// read as nextFile): the changes applied, and those that need a
// restart. Secrets show as "(secret)" and "(changed)", never their
// values.
func reloadChanges(cur, next *liveSet, start *config.Config, startSec config.Secrets, nextFile *config.Config) (changed, restart []admin.ReloadChange) {
	for _, c := range config.Changes(cur.cfg, next.cfg) {
		changed = append(changed, admin.ReloadChange(c))
	}
	if cur.sec.SmarthostPassword != next.sec.SmarthostPassword {
		changed = append(changed, admin.ReloadChange{Key: "smarthost.password_file", Old: "(secret)", New: "(changed)"})
	}
	if !slices.Equal(cur.dkim, next.dkim) {
		changed = append(changed, admin.ReloadChange{Key: "DKIM keys", Old: dkimList(cur.dkim), New: dkimList(next.dkim)})
	}
	for _, c := range config.Changes(next.cfg, nextFile) {
		restart = append(restart, admin.ReloadChange(c))
	}
	for _, s := range []struct {
		key      string
		old, new string
	}{
		{"admin.token_file", startSec.AdminToken, next.sec.AdminToken},
		{"redis.password_file", startSec.RedisPassword, next.sec.RedisPassword},
		{"oauth.client_secret_file", startSec.OAuthClientSecret, next.sec.OAuthClientSecret},
	} {
		if s.old != s.new {
			restart = append(restart, admin.ReloadChange{Key: s.key, Old: "(secret)", New: "(changed)"})
		}
	}
	return changed, restart
}

// dkimList prints the DKIM keys of the report.
func dkimList(keys []string) string {
	if len(keys) == 0 {
		return "(none)"
	}
	return "[" + strings.Join(keys, ", ") + "]"
}

// reloadFiles re-reads the certificates and the users, adding what it
// reloaded to rep; a failure keeps what was loaded before, and its
// error says so.
func reloadFiles(log *slog.Logger, certs *tlsconf.Certs, db *userdb.DB, rep *admin.ReloadReport) []error {
	var errs []error
	if err := certs.Reload(); err != nil {
		log.Error("reload: certificate kept", "err", err)
		errs = append(errs, fmt.Errorf("certificate kept: %w", err))
	} else {
		log.Info("reload: certificate loaded")
		rep.Reloaded = append(rep.Reloaded, "certificates")
	}
	if err := db.Reload(); err != nil {
		log.Error("reload: users kept", "err", err)
		errs = append(errs, fmt.Errorf("users kept: %w", err))
	} else {
		log.Info("reload: users loaded")
		rep.Reloaded = append(rep.Reloaded, "users")
	}
	return errs
}
