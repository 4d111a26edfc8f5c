package userdb

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// ErrNotLocal means an address is not in a local domain.
var ErrNotLocal = errors.New("userdb: not a local domain")

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
	// LocalDomains are the domains whose mail is delivered here. The first
	// is the primary one: postmaster@ any local domain without a user or
	// alias of its own goes to postmaster@ the first.
	LocalDomains []string
	// Aliases maps an alias address, in a local domain, to its targets:
	// users or other aliases in local domains.
	Aliases map[string][]string
	// SendAs maps a user's address to the other addresses and domains that
	// user may send as.
	SendAs map[string]SendAsGrant
}

// Validate checks the configuration: valid local domains, at least one;
// aliases and their targets valid addresses in local domains; SendAs users,
// addresses and domains valid. cmd calls it when it reads the
// configuration.
func (c DirectoryConfig) Validate() error {
	if len(c.LocalDomains) == 0 {
		return errors.New("userdb: no local domain")
	}
	local := make(map[string]bool)
	for _, dom := range c.LocalDomains {
		dom = strings.ToLower(dom)
		if err := checkDomain(dom); err != nil {
			return fmt.Errorf("userdb: local domain %q: %w", dom, err)
		}
		local[dom] = true
	}
	inLocal := func(what, addr string) error {
		a, err := NormalizeAddress(addr)
		if err != nil {
			return fmt.Errorf("userdb: %s: %w", what, err)
		}
		if !local[domainOf(a)] {
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
			if err := inLocal("target of alias "+alias, t); err != nil {
				return err
			}
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
			if err := checkDomain(strings.ToLower(dom)); err != nil {
				return fmt.Errorf("userdb: send-as domain %q of %s: %w", dom, user, err)
			}
		}
	}
	return nil
}

// Directory answers the SMTP session's questions about addresses from a DB
// and the configuration; it has the method set of smtpd.Directory. It is
// safe for concurrent use. Addresses are "local@domain"; local parts match
// ignoring case.
type Directory struct {
	db      *DB
	domains []string            // lower-cased, in configuration order
	local   map[string]bool     // the same, as a set
	aliases map[string][]string // by userKey
	sendAs  map[string]grant    // by userKey of the user
}

// grant is a SendAsGrant as sets of lower-cased addresses and domains.
type grant struct {
	addrs   map[string]bool
	domains map[string]bool
}

// NewDirectory returns a Directory over db with cfg, which it copies; cfg
// should have passed Validate.
func NewDirectory(db *DB, cfg DirectoryConfig) *Directory {
	d := &Directory{
		db:      db,
		local:   make(map[string]bool),
		aliases: make(map[string][]string),
		sendAs:  make(map[string]grant),
	}
	for _, dom := range cfg.LocalDomains {
		dom = strings.ToLower(strings.TrimSuffix(dom, "."))
		if !d.local[dom] {
			d.local[dom] = true
			d.domains = append(d.domains, dom)
		}
	}
	for alias, targets := range cfg.Aliases {
		k := userKey(alias)
		d.aliases[k] = append(d.aliases[k], targets...)
	}
	for user, g := range cfg.SendAs {
		k := userKey(user)
		gr, ok := d.sendAs[k]
		if !ok {
			gr = grant{addrs: make(map[string]bool), domains: make(map[string]bool)}
			d.sendAs[k] = gr
		}
		for _, a := range g.Addresses {
			gr.addrs[userKey(a)] = true
		}
		for _, dom := range g.Domains {
			gr.domains[strings.ToLower(strings.TrimSuffix(dom, "."))] = true
		}
	}
	return d
}

// IsLocalDomain reports whether mail for domain is delivered here, ignoring
// case and a trailing dot.
func (d *Directory) IsLocalDomain(domain string) bool {
	return d.local[strings.ToLower(strings.TrimSuffix(domain, "."))]
}

// RecipientExists reports whether addr, in a local domain, names a user or
// an alias. postmaster@ any local domain always exists (RFC 5321 §4.5.1),
// and so does the bare "postmaster"; Resolve says where it goes. It never
// fails; the error is for directories that can.
func (d *Directory) RecipientExists(ctx context.Context, addr string) (bool, error) {
	k := userKey(addr)
	if k == "postmaster" {
		return len(d.domains) > 0, nil
	}
	local, domain, ok := splitAddr(k)
	if !ok || !d.local[domain] {
		return false, nil
	}
	if local == "postmaster" { // RFC 5321 §4.5.1: must be accepted
		return true, nil
	}
	if _, ok := d.aliases[k]; ok {
		return true, nil
	}
	return d.db.Exists(k), nil
}

// MaySendAs reports whether the authenticated user may use addr as the
// envelope sender or in the From header: their own address (ignoring
// case), an address or a whole domain granted in DirectoryConfig.SendAs,
// or an alias that lists the user as a direct target. The null
// reverse-path (addr == "") claims no address and is allowed. It never
// fails.
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
	if g, ok := d.sendAs[ku]; ok {
		if g.addrs[ka] {
			return true, nil
		}
		if _, domain, ok := splitAddr(ka); ok && g.domains[domain] {
			return true, nil
		}
	}
	for _, t := range d.aliases[ka] {
		if userKey(t) == ku {
			return true, nil
		}
	}
	return false, nil
}

// Resolve returns the users' mailboxes that mail to addr, in a local
// domain, is delivered to: lower-cased addresses of existing users, without
// duplicates, in the order found, for use as mailbox paths. An alias
// expands to its targets, recursively up to a depth of 8; an address met
// again (a loop, or an alias that lists itself beside others) delivers to
// the user of that address if there is one. A user and an alias with the
// same address: the alias wins (list the address among its targets to
// keep the user's copy). postmaster@ a local domain without its own user or
// alias goes to postmaster@ the first local domain (RFC 5321 §4.5.1).
// Targets that name nobody are skipped; the error (wrapping ErrNotFound or
// ErrNotLocal) comes only when nothing is left.
func (d *Directory) Resolve(addr string) ([]string, error) {
	k := userKey(addr)
	if k == "postmaster" && len(d.domains) > 0 {
		k = "postmaster@" + d.domains[0]
	}
	if _, domain, ok := splitAddr(k); !ok || !d.local[domain] {
		return nil, fmt.Errorf("userdb: resolve %q: %w", addr, ErrNotLocal)
	}
	r := resolver{d: d, seen: make(map[string]bool)}
	r.walk(k, 0)
	if len(r.out) == 0 {
		return nil, fmt.Errorf("userdb: resolve %q: %w", addr, ErrNotFound)
	}
	return r.out, nil
}

// resolver is the state of one Resolve.
type resolver struct {
	d    *Directory
	seen map[string]bool
	out  []string
}

// walk resolves the lower-cased address k at alias depth depth.
func (r *resolver) walk(k string, depth int) {
	if r.seen[k] {
		r.addUser(k)
		return
	}
	r.seen[k] = true
	if targets, ok := r.d.aliases[k]; ok {
		if depth >= maxAliasDepth {
			return
		}
		for _, t := range targets {
			r.walk(userKey(t), depth+1)
		}
		return
	}
	if r.addUser(k) {
		return
	}
	local, domain, ok := splitAddr(k)
	if ok && local == "postmaster" && r.d.local[domain] && len(r.d.domains) > 0 {
		if primary := "postmaster@" + r.d.domains[0]; primary != k {
			r.walk(primary, depth)
		}
	}
}

// addUser adds k's user, if it exists and is not yet listed, and reports
// whether it exists.
func (r *resolver) addUser(k string) bool {
	if !r.d.db.Exists(k) {
		return false
	}
	for _, o := range r.out {
		if o == k {
			return true
		}
	}
	r.out = append(r.out, k)
	return true
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
