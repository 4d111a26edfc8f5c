package userdb

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"postern/internal/addrkey"
)

// ErrNotLocal means an address is not in a local domain.
var ErrNotLocal = errors.New("userdb: not a local domain")

// resolveTimeout bounds one Resolve's store queries.
const resolveTimeout = 30 * time.Second

// maxAliasDepth bounds alias expansion: an alias may name other aliases
// this deep. Loops end earlier, at the first address seen twice.
const maxAliasDepth = 8

// SendAsGrant lists what a user may send as besides their own address.
type SendAsGrant struct {
	// Addresses the user may send as, matched ignoring case.
	Addresses []string
	// Domains in which the user may send as any address.
	Domains []string
}

// DirectoryConfig is the part of the configuration a Directory needs.
type DirectoryConfig struct {
	// LocalDomains are the domains whose mail is delivered here.
	LocalDomains []string
	// Postmaster is where postmaster@ a local domain without a user or
	// alias of its own goes, and the bare "postmaster" (RFC 5321 §4.5.1);
	// "" means postmaster@ the first of LocalDomains. It reaches someone
	// only when it is in a local domain.
	Postmaster string
	// Aliases maps an alias address, in a local domain, to its targets:
	// users or other aliases in local domains, or addresses in other
	// domains, to which the mail is forwarded (Expand).
	Aliases map[string][]string
	// SendAs maps a user's address to the other addresses and domains that
	// user may send as.
	SendAs map[string]SendAsGrant
	// Refresh is how long aliases and send-as grants read from the store
	// (PostgreSQL) are reused before they are read again; they add to
	// those above. Zero means DefaultDirectoryRefresh. Users are not
	// cached: whether one exists is asked of the store each time.
	Refresh time.Duration
}

// DefaultDirectoryRefresh is how long a Directory reuses the aliases and
// send-as grants it read from the store.
const DefaultDirectoryRefresh = 5 * time.Second

// Validate checks the configuration: valid local domains, at least one;
// aliases valid addresses in local domains, their targets valid
// addresses in any domain; SendAs users,
// addresses and domains valid. cmd calls it when it reads the
// configuration.
func (c DirectoryConfig) Validate() error {
	if len(c.LocalDomains) == 0 {
		return errors.New("userdb: no local domain")
	}
	local := make(map[string]bool)
	for _, dom := range c.LocalDomains {
		d, err := normalizeDomain(strings.TrimSuffix(dom, "."))
		if err != nil {
			return fmt.Errorf("userdb: local domain %q: %w", dom, err)
		}
		local[domainKey(d)] = true
	}
	inLocal := func(what, addr string) error {
		a, err := NormalizeAddress(addr)
		if err != nil {
			return fmt.Errorf("userdb: %s: %w", what, err)
		}
		if !local[domainKey(domainOf(a))] {
			return fmt.Errorf("userdb: %s %q: %w", what, addr, ErrNotLocal)
		}
		return nil
	}
	for alias, targets := range c.Aliases {
		if err := inLocal("alias", alias); err != nil {
			return err
		}
		if len(targets) == 0 {
			return fmt.Errorf("userdb: alias %q has no target", alias)
		}
		for _, t := range targets {
			// A target in another domain forwards (Expand).
			if _, err := NormalizeAddress(t); err != nil {
				return fmt.Errorf("userdb: target of alias %s: %w", alias, err)
			}
		}
	}
	if c.Postmaster != "" {
		if _, err := NormalizeAddress(c.Postmaster); err != nil {
			return fmt.Errorf("userdb: postmaster: %w", err)
		}
	}
	for user, g := range c.SendAs {
		if _, err := NormalizeAddress(user); err != nil {
			return fmt.Errorf("userdb: send-as user: %w", err)
		}
		for _, a := range g.Addresses {
			if _, err := NormalizeAddress(a); err != nil {
				return fmt.Errorf("userdb: send-as address of %s: %w", user, err)
			}
		}
		for _, dom := range g.Domains {
			if _, err := normalizeDomain(strings.TrimSuffix(dom, ".")); err != nil {
				return fmt.Errorf("userdb: send-as domain %q of %s: %w", dom, user, err)
			}
		}
	}
	return nil
}

// Directory answers the SMTP session's questions about addresses from a DB
// and the configuration; it has the method set of smtpd.Directory. It is
// safe for concurrent use. Addresses are "local@domain", compared by
// their addrkey keys: domains as A-labels, local parts in NFC ignoring
// the case of ASCII letters only.
//
// With a store that keeps aliases and send-as grants (PostgreSQL), the
// Directory reads all of them at once and reuses them for
// DirectoryConfig.Refresh, so a lookup costs no query for them; whether a
// user exists is asked of the store each time (one indexed query).
type Directory struct {
	db      *DB
	src     dirStore // nil: the configuration is all
	refresh time.Duration

	conf    atomic.Pointer[dirConf]     // the DirectoryConfig in use (SetConfig)
	snap    atomic.Pointer[dirSnapshot] // conf's merged with src's, when src != nil
	loading sync.Mutex                  // one read of src at a time
}

// dirConf is a DirectoryConfig as a Directory uses it.
type dirConf struct {
	domains    []string        // domain keys (addrkey.Domain), in configuration order
	local      map[string]bool // the same, as a set
	postmaster string          // userKey of DirectoryConfig.Postmaster or its default
	config     *dirSnapshot    // from the configuration alone
}

// dirSnapshot is the aliases and grants a lookup uses.
type dirSnapshot struct {
	aliases map[string][]string // by userKey
	sendAs  map[string]grant    // by userKey of the user
	read    time.Time           // when src was read
	conf    *dirConf            // whose configuration it holds
}

// grant is a SendAsGrant as sets of address and domain keys.
type grant struct {
	addrs   map[string]bool
	domains map[string]bool
}

// add merges aliases and grants into s.
func (s *dirSnapshot) add(aliases map[string][]string, sendAs map[string]SendAsGrant) {
	for alias, targets := range aliases {
		k := userKey(alias)
		s.aliases[k] = append(s.aliases[k], targets...)
	}
	for user, g := range sendAs {
		k := userKey(user)
		gr, ok := s.sendAs[k]
		if !ok {
			gr = grant{addrs: make(map[string]bool), domains: make(map[string]bool)}
			s.sendAs[k] = gr
		}
		for _, a := range g.Addresses {
			gr.addrs[userKey(a)] = true
		}
		for _, dom := range g.Domains {
			gr.domains[domainKey(dom)] = true
		}
	}
}

// newSnapshot returns an empty snapshot.
func newSnapshot() *dirSnapshot {
	return &dirSnapshot{aliases: make(map[string][]string), sendAs: make(map[string]grant)}
}

// NewDirectory returns a Directory over db with cfg, which it copies; cfg
// should have passed Validate.
func NewDirectory(db *DB, cfg DirectoryConfig) *Directory {
	d := &Directory{db: db, refresh: cfg.Refresh}
	if d.refresh <= 0 {
		d.refresh = DefaultDirectoryRefresh
	}
	d.src, _ = db.dirStore()
	d.SetConfig(cfg)
	return d
}

// SetConfig makes cfg's local domains, postmaster, aliases and send-as
// grants those of the lookups that start from now on (a reload of the
// configuration); cfg should have passed Validate. Its Refresh is not
// changed.
func (d *Directory) SetConfig(cfg DirectoryConfig) {
	c := &dirConf{local: make(map[string]bool), config: newSnapshot()}
	for _, dom := range cfg.LocalDomains {
		dom = domainKey(dom)
		if !c.local[dom] {
			c.local[dom] = true
			c.domains = append(c.domains, dom)
		}
	}
	c.config.add(cfg.Aliases, cfg.SendAs)
	c.config.conf = c
	c.postmaster = userKey(cfg.Postmaster)
	if c.postmaster == "" && len(c.domains) > 0 {
		c.postmaster = "postmaster@" + c.domains[0]
	}
	d.conf.Store(c)
}

// current returns the aliases and grants to use: the configuration's, plus
// the store's as read within the last Refresh. When reading the store
// fails, the last good read is used (and the failure logged); only when
// there is none does the error come back.
func (d *Directory) current(ctx context.Context) (*dirSnapshot, error) {
	c := d.conf.Load()
	if d.src == nil {
		return c.config, nil
	}
	now := d.db.now()
	s := d.snap.Load()
	if s != nil && s.conf != c {
		s = nil // the configuration changed: read again
	}
	if s != nil && now.Sub(s.read) < d.refresh && !now.Before(s.read) {
		return s, nil
	}
	if s != nil {
		if !d.loading.TryLock() {
			return s, nil // another lookup is reading; this one uses the old
		}
	} else {
		d.loading.Lock()
	}
	defer d.loading.Unlock()
	if s2 := d.snap.Load(); s2 != s && s2 != nil && s2.conf == c {
		return s2, nil // read while this one waited
	}
	n, err := d.read(ctx, c, now)
	if err != nil {
		if s != nil {
			d.db.log.Error("userdb: read aliases and send-as grants; using the last read", "err", err)
			return s, nil
		}
		return nil, err
	}
	d.snap.Store(n)
	return n, nil
}

// read reads the store's aliases and grants, merged with those of c,
// as at now; it does not keep them.
func (d *Directory) read(ctx context.Context, c *dirConf, now time.Time) (*dirSnapshot, error) {
	if d.src == nil {
		return c.config, nil
	}
	aliases, err := d.src.aliases(ctx)
	var grants map[string]SendAsGrant
	if err == nil {
		grants, err = d.src.sendAs(ctx)
	}
	if err != nil {
		return nil, err
	}
	n := newSnapshot()
	n.read, n.conf = now, c
	n.add(c.config.aliasesMap(), nil)
	for u, g := range c.config.sendAs {
		n.sendAs[u] = grant{addrs: maps.Clone(g.addrs), domains: maps.Clone(g.domains)}
	}
	m := make(map[string][]string, len(aliases))
	for _, a := range aliases {
		m[a.Address] = a.Targets
	}
	n.add(m, grants)
	return n, nil
}

// aliasesMap returns a copy of s's aliases.
func (s *dirSnapshot) aliasesMap() map[string][]string {
	m := make(map[string][]string, len(s.aliases))
	for k, v := range s.aliases {
		m[k] = slices.Clone(v)
	}
	return m
}

// IsLocalDomain reports whether mail for domain is delivered here,
// comparing A-labels (a U-label matches its A-label), ignoring the case of
// ASCII letters and a trailing dot. A domain that is not a valid IDNA2008
// name is not local: "wor\u212A.test" (KELVIN SIGN) is not work.test.
func (d *Directory) IsLocalDomain(domain string) bool {
	k, err := addrkey.Domain(domain)
	return err == nil && d.conf.Load().local[k]
}

// RecipientExists reports whether addr, in a local domain, names a user or
// an alias. postmaster@ a local domain, and the bare "postmaster", exist
// only when their mail reaches a user (see Resolve): RFC 5321 §4.5.1
// requires the address, and mail accepted for nobody would bounce later,
// to a sender who may be forged. It fails only when the store cannot
// answer.
func (d *Directory) RecipientExists(ctx context.Context, addr string) (bool, error) {
	c := d.conf.Load()
	k := userKey(addr)
	if k == "postmaster" {
		k = c.postmaster
	}
	local, domain, ok := splitAddr(k)
	if !ok || !c.local[domain] {
		return false, nil
	}
	if local == "postmaster" || k == c.postmaster {
		x, err := d.resolve(ctx, k)
		if errors.Is(err, ErrNotFound) {
			return false, nil
		}
		return len(x.Mailboxes)+len(x.Forward) > 0, err
	}
	s, err := d.current(ctx)
	if err != nil {
		return false, err
	}
	if _, ok := s.aliases[k]; ok {
		return true, nil
	}
	return d.db.exists(ctx, k)
}

// MaySendAs reports whether the authenticated user may use addr as the
// envelope sender or in the From header: their own address (ignoring
// case), an address or a whole domain granted in DirectoryConfig.SendAs,
// or an alias that lists the user as a direct target. The null
// reverse-path (addr == "") claims no address and is allowed. It fails
// only when the store cannot answer.
func (d *Directory) MaySendAs(ctx context.Context, user, addr string) (bool, error) {
	if addr == "" {
		return true, nil
	}
	if user == "" {
		return false, nil
	}
	ku, ka := userKey(user), userKey(addr)
	if ku == ka {
		return true, nil
	}
	s, err := d.current(ctx)
	if err != nil {
		return false, err
	}
	if g, ok := s.sendAs[ku]; ok {
		if g.addrs[ka] {
			return true, nil
		}
		if _, domain, ok := splitAddr(ka); ok && g.domains[domain] {
			return true, nil
		}
	}
	for _, t := range s.aliases[ka] {
		if userKey(t) == ku {
			return true, nil
		}
	}
	return false, nil
}

// Resolve returns the users' mailboxes that mail to addr, in a local
// domain, is delivered to: Expand's Mailboxes. It fails like Expand; an
// alias whose targets are all in other domains has no mailbox and no
// error (Expand names the addresses it forwards to).
func (d *Directory) Resolve(addr string) ([]string, error) {
	x, err := d.Expand(addr)
	return x.Mailboxes, err
}

// Expansion is where the mail for one address goes.
type Expansion struct {
	// Mailboxes are the keys (userKey) of the existing users, without
	// duplicates, in the order found, for use as mailbox paths.
	Mailboxes []string
	// Forward are the alias targets in other domains, as written in the
	// alias, without duplicates (compared as keys), in the order found:
	// the mail is forwarded to them.
	Forward []string
}

// Expand returns where mail to addr, in a local domain, goes: users'
// mailboxes, and addresses in other domains. An alias expands to its
// targets, recursively up to a depth of 8; an address met again (a loop,
// or an alias that lists itself beside others) delivers to the user of
// that address if there is one. A user and an alias with the same
// address: the alias wins (list the address among its targets to keep
// the user's copy). postmaster@ a local domain without its own user or
// alias goes to DirectoryConfig.Postmaster (RFC 5321 §4.5.1). Local
// targets that name nobody are skipped; the error (wrapping ErrNotFound
// or ErrNotLocal) comes only when nothing is left. When the store cannot
// answer for any address met, the error wraps neither, so delivery is
// retried rather than made to a part of the list.
func (d *Directory) Expand(addr string) (Expansion, error) {
	ctx, cancel := context.WithTimeout(context.Background(), resolveTimeout)
	defer cancel()
	return d.resolve(ctx, addr)
}

// resolve is Expand with a context.
func (d *Directory) resolve(ctx context.Context, addr string) (Expansion, error) {
	snap, err := d.current(ctx)
	if err != nil {
		return Expansion{}, fmt.Errorf("userdb: resolve %q: %w", addr, err)
	}
	return d.resolveIn(ctx, snap, addr)
}

// resolveIn is resolve with the aliases of snap.
func (d *Directory) resolveIn(ctx context.Context, snap *dirSnapshot, addr string) (Expansion, error) {
	c := snap.conf
	k := userKey(addr)
	if k == "postmaster" {
		k = c.postmaster
	}
	if _, domain, ok := splitAddr(k); !ok || !c.local[domain] {
		return Expansion{}, fmt.Errorf("userdb: resolve %q: %w", addr, ErrNotLocal)
	}
	r := resolver{d: d, c: c, ctx: ctx, snap: snap, seen: make(map[string]bool)}
	r.walk(k, 0)
	if r.err != nil {
		return Expansion{}, fmt.Errorf("userdb: resolve %q: %w", addr, r.err)
	}
	if len(r.out.Mailboxes) == 0 && len(r.out.Forward) == 0 {
		return Expansion{}, fmt.Errorf("userdb: resolve %q: %w", addr, ErrNotFound)
	}
	return r.out, nil
}

// UnreachablePostmaster is a postmaster address whose mail reaches no
// user.
type UnreachablePostmaster struct {
	// Address is the postmaster address.
	Address string
	// Via is where its mail goes and reaches nobody: the first target of
	// its own alias, the DirectoryConfig.Postmaster it falls back to, or
	// Address itself. A user with that address (or an alias of it to a
	// user) fixes it.
	Via string
}

// UnreachablePostmasters returns the postmaster addresses whose mail
// reaches no user, in configuration order: postmaster@ each local
// domain, then DirectoryConfig.Postmaster when it is local and not among
// them. RCPT refuses them (550 5.1.1) until a user or an alias is made;
// serve warns of them at start and postern check fails. It fails only
// when the store cannot answer.
func (d *Directory) UnreachablePostmasters(ctx context.Context) ([]UnreachablePostmaster, error) {
	c := d.conf.Load()
	addrs := make([]string, 0, len(c.domains)+1)
	for _, dom := range c.domains {
		addrs = append(addrs, "postmaster@"+dom)
	}
	if _, dom, ok := splitAddr(c.postmaster); ok && c.local[dom] && !slices.Contains(addrs, c.postmaster) {
		addrs = append(addrs, c.postmaster)
	}
	// A read of its own, not kept: the aliases made right after it are
	// seen by the next lookup, not Refresh later.
	snap, err := d.read(ctx, c, d.db.now())
	if err != nil {
		return nil, err
	}
	var out []UnreachablePostmaster
	for _, a := range addrs {
		_, err := d.resolveIn(ctx, snap, a)
		switch {
		case errors.Is(err, ErrNotFound):
			via := a
			if targets := snap.aliases[a]; len(targets) > 0 {
				via = userKey(targets[0])
			} else if _, dom, _ := splitAddr(c.postmaster); a != c.postmaster && c.local[dom] {
				via = c.postmaster
			}
			out = append(out, UnreachablePostmaster{Address: a, Via: via})
		case err != nil:
			return nil, err
		}
	}
	return out, nil
}

// resolver is the state of one Resolve.
type resolver struct {
	d    *Directory
	c    *dirConf // the configuration snap holds
	ctx  context.Context
	snap *dirSnapshot
	seen map[string]bool
	out  Expansion
	err  error // the first store failure
}

// walk resolves the lower-cased address k at alias depth depth.
func (r *resolver) walk(k string, depth int) {
	if r.seen[k] {
		r.addUser(k)
		return
	}
	r.seen[k] = true
	if targets, ok := r.snap.aliases[k]; ok {
		if depth >= maxAliasDepth {
			return
		}
		for _, t := range targets {
			if _, domain, ok := splitAddr(userKey(t)); ok && !r.c.local[domain] {
				r.forward(t)
				continue
			}
			r.walk(userKey(t), depth+1)
		}
		return
	}
	if r.addUser(k) {
		return
	}
	local, domain, ok := splitAddr(k)
	if ok && local == "postmaster" && r.c.local[domain] && r.c.postmaster != k {
		if _, pd, ok := splitAddr(r.c.postmaster); ok && r.c.local[pd] {
			r.walk(r.c.postmaster, depth)
		}
	}
}

// addUser adds k's user, if it exists and is not yet listed, and reports
// whether it exists.
func (r *resolver) addUser(k string) bool {
	ok, err := r.d.db.exists(r.ctx, k)
	if err != nil && r.err == nil {
		r.err = err
	}
	if !ok {
		return false
	}
	if !slices.Contains(r.out.Mailboxes, k) {
		r.out.Mailboxes = append(r.out.Mailboxes, k)
	}
	return true
}

// forward adds t, an alias target in another domain, to the addresses
// forwarded to, once (compared as userKey).
func (r *resolver) forward(t string) {
	for _, f := range r.out.Forward {
		if userKey(f) == userKey(t) {
			return
		}
	}
	r.out.Forward = append(r.out.Forward, t)
}

// splitAddr splits a lower-cased address at its last "@".
func splitAddr(addr string) (local, domain string, ok bool) {
	i := strings.LastIndexByte(addr, '@')
	if i <= 0 || i == len(addr)-1 {
		return "", "", false
	}
	return addr[:i], addr[i+1:], true
}

// domainOf returns the domain of a normalized address.
func domainOf(addr string) string {
	_, domain, _ := splitAddr(addr)
	return domain
}
