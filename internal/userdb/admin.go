package userdb

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// ErrConfigDirectory means the DB's store keeps no aliases or send-as
// grants: with the users file they are in the configuration.
var ErrConfigDirectory = errors.New("userdb: aliases and send-as grants of the file backend are in the configuration")

// ErrNoEntry means DeleteAlias or DeleteSendAs found nothing to delete.
var ErrNoEntry = errors.New("userdb: no such alias, target or grant")

// Alias is an alias kept in the store: mail to Address goes to Targets.
type Alias struct {
	// Address is the alias, the domain lower-cased.
	Address string
	// Targets are users or other aliases, in the order added.
	Targets []string
}

// dirStore returns the store's alias and grant keeper, or
// ErrConfigDirectory.
func (d *DB) dirStore() (dirStore, error) {
	if s, ok := d.st.(dirStore); ok {
		return s, nil
	}
	return nil, ErrConfigDirectory
}

// normalizeAll normalizes addrs (what names them in errors).
func normalizeAll(what string, addrs []string) ([]string, error) {
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		n, err := NormalizeAddress(a)
		if err != nil {
			return nil, fmt.Errorf("userdb: %s: %w", what, err)
		}
		out = append(out, n)
	}
	return out, nil
}

// AddAlias adds targets (at least one) to the alias (creating it). Every
// address must pass NormalizeAddress; the caller checks that the alias is
// in a local domain (as DirectoryConfig.Validate does for configured
// ones). A target in another domain forwards there (Directory.Expand).
// With the users file it fails with ErrConfigDirectory. Directories see
// the change within DirectoryConfig.Refresh.
func (d *DB) AddAlias(ctx context.Context, alias string, targets ...string) error {
	s, err := d.dirStore()
	if err != nil {
		return err
	}
	if len(targets) == 0 {
		return fmt.Errorf("userdb: alias %q: no target", alias)
	}
	a, err := NormalizeAddress(alias)
	if err != nil {
		return fmt.Errorf("userdb: alias: %w", err)
	}
	ts, err := normalizeAll("alias target", targets)
	if err != nil {
		return err
	}
	return s.addAlias(ctx, a, ts)
}

// DeleteAlias removes targets from the alias, or the whole alias when none
// is given. It fails with ErrNoEntry when nothing matched, and with
// ErrConfigDirectory with the users file.
func (d *DB) DeleteAlias(ctx context.Context, alias string, targets ...string) error {
	s, err := d.dirStore()
	if err != nil {
		return err
	}
	ts, err := normalizeAll("alias target", targets)
	if err != nil {
		return err
	}
	return s.deleteAlias(ctx, userKey(alias), ts)
}

// Aliases returns the aliases kept in the store, sorted by lower-cased
// address (not those of the configuration). With the users file it fails
// with ErrConfigDirectory.
func (d *DB) Aliases(ctx context.Context) ([]Alias, error) {
	s, err := d.dirStore()
	if err != nil {
		return nil, err
	}
	return s.aliases(ctx)
}

// normalizeGrant checks and normalizes g's addresses and domains.
func normalizeGrant(g SendAsGrant) (SendAsGrant, error) {
	var out SendAsGrant
	var err error
	if out.Addresses, err = normalizeAll("send-as address", g.Addresses); err != nil {
		return out, err
	}
	for _, dom := range g.Domains {
		dom, err := normalizeDomain(strings.TrimSuffix(dom, "."))
		if err != nil {
			return out, fmt.Errorf("userdb: send-as domain %q: %w", dom, err)
		}
		out.Domains = append(out.Domains, dom)
	}
	return out, nil
}

// AddSendAs grants user the addresses and domains of g, besides its own
// address. With the users file it fails with ErrConfigDirectory.
// Directories see the change within DirectoryConfig.Refresh.
func (d *DB) AddSendAs(ctx context.Context, user string, g SendAsGrant) error {
	s, err := d.dirStore()
	if err != nil {
		return err
	}
	u, err := NormalizeAddress(user)
	if err != nil {
		return fmt.Errorf("userdb: send-as user: %w", err)
	}
	if g, err = normalizeGrant(g); err != nil {
		return err
	}
	if len(g.Addresses)+len(g.Domains) == 0 {
		return fmt.Errorf("userdb: send-as grant for %s: nothing granted", u)
	}
	return s.addSendAs(ctx, u, g)
}

// DeleteSendAs withdraws the addresses and domains of g from user, or all
// of user's grants when g is empty. It fails with ErrNoEntry when nothing
// matched, and with ErrConfigDirectory with the users file.
func (d *DB) DeleteSendAs(ctx context.Context, user string, g SendAsGrant) error {
	s, err := d.dirStore()
	if err != nil {
		return err
	}
	if g, err = normalizeGrant(g); err != nil {
		return err
	}
	return s.deleteSendAs(ctx, userKey(user), g)
}

// SendAsGrants returns the grants kept in the store by user address (not
// those of the configuration). With the users file it fails with
// ErrConfigDirectory.
func (d *DB) SendAsGrants(ctx context.Context) (map[string]SendAsGrant, error) {
	s, err := d.dirStore()
	if err != nil {
		return nil, err
	}
	return s.sendAs(ctx)
}
