// Package redistickets keeps TLS session ticket keys in Redis, so that
// every Postern node sharing the Redis server encrypts and decrypts the
// same session tickets: a client resumes on whichever node it reaches.
// Store implements tlsconf.TicketKeyStore.
package redistickets

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"postern/internal/tlsconf"
)

// DefaultKey is the Redis key of the list of ticket keys when
// Store.Key is empty.
const DefaultKey = "postern:tls:ticket-keys"

// Store is a tlsconf.TicketKeyStore on Redis: a list, newest key first,
// each entry "CREATED_UNIX_MS:HEX_KEY". The key material is a secret: the
// Redis server must be as trusted as the nodes (AUTH, a private network).
type Store struct {
	// Client is the Redis client; the caller owns and closes it.
	Client redis.Cmdable
	// Key is the Redis key of the list; "" means DefaultKey. Nodes that
	// share tickets use the same.
	Key string
}

var _ tlsconf.TicketKeyStore = (*Store)(nil)

// rotateScript is atomic on the server: it adds ARGV[4] as the newest entry
// only when the list is empty or its newest entry was created at or
// before ARGV[1] - ARGV[2] (milliseconds), trims to ARGV[3] entries, and
// returns the list. Two nodes rotating at once add one key, not two.
const rotateScript = `
local head = redis.call('LINDEX', KEYS[1], 0)
local due = true
if head then
  local created = tonumber(string.match(head, '^(%d+):'))
  if created and tonumber(ARGV[1]) < created + tonumber(ARGV[2]) then
    due = false
  end
end
if due then
  redis.call('LPUSH', KEYS[1], ARGV[4])
  redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[3]) - 1)
end
return redis.call('LRANGE', KEYS[1], 0, -1)
`

// Rotate implements tlsconf.TicketKeyStore in one round trip.
func (s *Store) Rotate(ctx context.Context, now time.Time, every time.Duration, keep int) ([]tlsconf.TicketKey, error) {
	key := s.Key
	if key == "" {
		key = DefaultKey
	}
	if keep <= 0 {
		keep = tlsconf.DefaultTicketKeys
	}
	var fresh [32]byte
	if _, err := rand.Read(fresh[:]); err != nil {
		return nil, fmt.Errorf("redistickets: %w", err)
	}
	entry := strconv.FormatInt(now.UnixMilli(), 10) + ":" + hex.EncodeToString(fresh[:])
	res, err := redis.NewScript(rotateScript).Run(ctx, s.Client, []string{key}, now.UnixMilli(), every.Milliseconds(), keep, entry).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("redistickets: rotate %s: %w", key, err)
	}
	out := make([]tlsconf.TicketKey, 0, len(res))
	for _, e := range res {
		k, err := parse(e)
		if err != nil {
			return nil, fmt.Errorf("redistickets: %s: %w", key, err)
		}
		out = append(out, k)
	}
	if len(out) == 0 {
		return nil, errors.New("redistickets: no key after rotation")
	}
	return out, nil
}

func parse(e string) (tlsconf.TicketKey, error) {
	ms, hx, ok := strings.Cut(e, ":")
	if !ok {
		return tlsconf.TicketKey{}, fmt.Errorf("malformed entry")
	}
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return tlsconf.TicketKey{}, fmt.Errorf("malformed entry time: %w", err)
	}
	b, err := hex.DecodeString(hx)
	if err != nil || len(b) != 32 {
		return tlsconf.TicketKey{}, fmt.Errorf("malformed entry key")
	}
	k := tlsconf.TicketKey{Created: time.UnixMilli(n)}
	copy(k.Key[:], b)
	return k, nil
}
