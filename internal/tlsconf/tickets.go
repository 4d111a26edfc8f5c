package tlsconf

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// DefaultTicketKeys is how many ticket keys are kept when
// TicketOptions.Keep is zero: the current one and two previous ones, so
// a ticket stays usable for two to three rotation periods.
const DefaultTicketKeys = 3

// TicketKey is one session ticket key (tls.Config.SetSessionTicketKeys).
type TicketKey struct {
	// Key is the key material.
	Key [32]byte
	// Created is when the key was made; the newest key encrypts new
	// tickets.
	Created time.Time
}

// TicketKeyStore keeps the session ticket keys, so that every node that
// shares the store encrypts and decrypts the same tickets. Rotate must
// be atomic among the nodes sharing the store.
type TicketKeyStore interface {
	// Rotate returns the keys, newest first. When there is none, or the
	// newest was created at or before now minus every, it first adds a
	// new random key and keeps only the keep newest.
	Rotate(ctx context.Context, now time.Time, every time.Duration, keep int) ([]TicketKey, error)
}

// MemoryTicketKeys is a TicketKeyStore for a single node. Its zero value
// is ready to use; it is safe for concurrent use.
type MemoryTicketKeys struct {
	mu   sync.Mutex
	keys []TicketKey
}

// Rotate implements TicketKeyStore.
func (m *MemoryTicketKeys) Rotate(_ context.Context, now time.Time, every time.Duration, keep int) ([]TicketKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.keys) == 0 || !now.Before(m.keys[0].Created.Add(every)) {
		k, err := NewTicketKey(now)
		if err != nil {
			return nil, err
		}
		m.keys = append([]TicketKey{k}, m.keys...)
		if keep > 0 && len(m.keys) > keep {
			m.keys = m.keys[:keep]
		}
	}
	return append([]TicketKey(nil), m.keys...), nil
}

// NewTicketKey returns a random key created at now.
func NewTicketKey(now time.Time) (TicketKey, error) {
	k := TicketKey{Created: now}
	if _, err := rand.Read(k.Key[:]); err != nil {
		return TicketKey{}, fmt.Errorf("tlsconf: ticket key: %w", err)
	}
	return k, nil
}

// TicketOptions configures a Tickets rotator.
type TicketOptions struct {
	// Store keeps the keys; nil means a new MemoryTicketKeys.
	Store TicketKeyStore
	// Rotation is how often a new key is made. Required (positive):
	// Postern's configuration resolves its default, in internal/config.
	Rotation time.Duration
	// Keep is how many keys are kept (the current and previous ones);
	// 0 means DefaultTicketKeys.
	Keep int
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Logger receives rotation events; nil discards them.
	Logger *slog.Logger
}

// Tickets installs session ticket keys from a TicketKeyStore into server
// configs: the newest key encrypts new tickets, the previous ones still
// decrypt (resume) tickets issued before a rotation.
type Tickets struct {
	opts TicketOptions
	log  *slog.Logger

	mu      sync.Mutex
	configs []*tls.Config
	newest  time.Time
}

// NewTickets returns a rotator for opts. It panics when opts.Rotation
// is not positive, as time.NewTicker does.
func NewTickets(opts TicketOptions) *Tickets {
	if opts.Store == nil {
		opts.Store = &MemoryTicketKeys{}
	}
	if opts.Rotation <= 0 {
		panic("tlsconf: TicketOptions.Rotation must be positive")
	}
	if opts.Keep <= 0 {
		opts.Keep = DefaultTicketKeys
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	t := &Tickets{opts: opts, log: opts.Logger}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	return t
}

// Add installs the current keys into cfgs (skipping those with
// SessionTicketsDisabled) and keeps them updated at each Update.
func (t *Tickets) Add(ctx context.Context, cfgs ...*tls.Config) error {
	t.mu.Lock()
	for _, c := range cfgs {
		if !c.SessionTicketsDisabled {
			t.configs = append(t.configs, c)
		}
	}
	t.mu.Unlock()
	return t.Update(ctx)
}

// Update rotates the keys in the store when due and installs them into
// every added config. Another node's rotation is picked up here too.
func (t *Tickets) Update(ctx context.Context) error {
	keys, err := t.opts.Store.Rotate(ctx, t.opts.Now(), t.opts.Rotation, t.opts.Keep)
	if err != nil {
		return fmt.Errorf("tlsconf: session ticket keys: %w", err)
	}
	if len(keys) == 0 {
		return fmt.Errorf("tlsconf: session ticket keys: store returned none")
	}
	raw := make([][32]byte, len(keys))
	for i, k := range keys {
		raw[i] = k.Key
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range t.configs {
		c.SetSessionTicketKeys(raw)
	}
	if !keys[0].Created.Equal(t.newest) {
		msg := "TLS session ticket keys rotated"
		if t.newest.IsZero() {
			msg = "TLS session ticket keys installed"
		}
		t.newest = keys[0].Created
		t.log.Info(msg, "keys", len(keys), "newest_created", keys[0].Created.UTC().Format(time.RFC3339))
	}
	return nil
}

// Run calls Update until ctx ends, every Rotation/12 (at least a
// minute), so a rotation made by this node or another sharing the store
// is installed soon after it is due. A failed update keeps the keys
// installed before and is logged.
func (t *Tickets) Run(ctx context.Context) {
	every := max(t.opts.Rotation/12, time.Minute)
	tk := time.NewTicker(every)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
			if err := t.Update(ctx); err != nil {
				t.log.Error("TLS session ticket keys kept", "err", err)
			}
		}
	}
}
