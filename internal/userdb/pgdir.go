package userdb

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// The PostgreSQL store keeps aliases and send-as grants.
var _ dirStore = (*pgStore)(nil)

func (s *pgStore) addAlias(ctx context.Context, alias string, targets []string) error {
	ctx, cancel := context.WithTimeout(ctx, pgQueryTimeout)
	defer cancel()
	b := &pgx.Batch{}
	for _, t := range targets {
		b.Queue(`INSERT INTO aliases (alias_key, alias, target_key, target) VALUES ($1, $2, $3, $4)
			ON CONFLICT (alias_key, target_key) DO NOTHING`, userKey(alias), alias, userKey(t), t)
	}
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("userdb: postgres: add alias %s: %w", alias, s.pgErr(err))
	}
	return nil
}

func (s *pgStore) deleteAlias(ctx context.Context, aliasKey string, targets []string) error {
	ctx, cancel := context.WithTimeout(ctx, pgQueryTimeout)
	defer cancel()
	keys := make([]string, 0, len(targets))
	for _, t := range targets {
		keys = append(keys, userKey(t))
	}
	q, args := `DELETE FROM aliases WHERE alias_key = $1`, []any{aliasKey}
	if len(keys) > 0 {
		q, args = q+` AND target_key = ANY($2)`, append(args, keys)
	}
	tag, err := s.pool.Exec(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("userdb: postgres: delete alias %s: %w", aliasKey, s.pgErr(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("userdb: delete alias %s: %w", aliasKey, ErrNoEntry)
	}
	return nil
}

func (s *pgStore) aliases(ctx context.Context) ([]Alias, error) {
	ctx, cancel := context.WithTimeout(ctx, pgQueryTimeout)
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT alias_key, alias, target FROM aliases ORDER BY alias_key, id`)
	if err != nil {
		return nil, fmt.Errorf("userdb: postgres: aliases: %w", s.pgErr(err))
	}
	var out []Alias
	last := ""
	var key, alias, target string
	_, err = pgx.ForEachRow(rows, []any{&key, &alias, &target}, func() error {
		if len(out) == 0 || key != last {
			out = append(out, Alias{Address: alias})
			last = key
		}
		out[len(out)-1].Targets = append(out[len(out)-1].Targets, target)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("userdb: postgres: aliases: %w", s.pgErr(err))
	}
	return out, nil
}

// grantRows returns g as (kind, value) pairs.
func grantRows(g SendAsGrant) (kinds, values []string) {
	for _, a := range g.Addresses {
		kinds, values = append(kinds, "address"), append(values, userKey(a))
	}
	for _, dom := range g.Domains {
		kinds, values = append(kinds, "domain"), append(values, dom)
	}
	return kinds, values
}

func (s *pgStore) addSendAs(ctx context.Context, user string, g SendAsGrant) error {
	ctx, cancel := context.WithTimeout(ctx, pgQueryTimeout)
	defer cancel()
	kinds, values := grantRows(g)
	_, err := s.pool.Exec(ctx, `INSERT INTO send_as (user_key, "user", kind, value)
		SELECT $1, $2, k, v FROM unnest($3::text[], $4::text[]) AS g(k, v)
		ON CONFLICT DO NOTHING`, userKey(user), user, kinds, values)
	if err != nil {
		return fmt.Errorf("userdb: postgres: add send-as of %s: %w", user, s.pgErr(err))
	}
	return nil
}

func (s *pgStore) deleteSendAs(ctx context.Context, userKey string, g SendAsGrant) error {
	ctx, cancel := context.WithTimeout(ctx, pgQueryTimeout)
	defer cancel()
	kinds, values := grantRows(g)
	q, args := `DELETE FROM send_as WHERE user_key = $1`, []any{userKey}
	if len(kinds) > 0 {
		q = q + ` AND (kind, value) IN (SELECT k, v FROM unnest($2::text[], $3::text[]) AS g(k, v))`
		args = append(args, kinds, values)
	}
	tag, err := s.pool.Exec(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("userdb: postgres: delete send-as of %s: %w", userKey, s.pgErr(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("userdb: delete send-as of %s: %w", userKey, ErrNoEntry)
	}
	return nil
}

func (s *pgStore) sendAs(ctx context.Context) (map[string]SendAsGrant, error) {
	ctx, cancel := context.WithTimeout(ctx, pgQueryTimeout)
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT user_key, "user", kind, value FROM send_as ORDER BY user_key, kind, value`)
	if err != nil {
		return nil, fmt.Errorf("userdb: postgres: send-as: %w", s.pgErr(err))
	}
	out := make(map[string]SendAsGrant)
	names := make(map[string]string) // user_key -> the first spelling met
	var key, user, kind, value string
	_, err = pgx.ForEachRow(rows, []any{&key, &user, &kind, &value}, func() error {
		name, ok := names[key]
		if !ok {
			name = user
			names[key] = user
		}
		g := out[name]
		if kind == "domain" {
			g.Domains = append(g.Domains, value)
		} else {
			g.Addresses = append(g.Addresses, value)
		}
		out[name] = g
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("userdb: postgres: send-as: %w", s.pgErr(err))
	}
	return out, nil
}
