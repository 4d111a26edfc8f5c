package userdb

import (
	"context"
	"time"
)

// store is where a DB keeps its users: the users file (fileStore) or a
// PostgreSQL database (pgStore). The logic around it (hashing, the
// verified-credential cache, the mechanism secrets) lives in DB and is the
// same for both. Keys are userKey(address). Every method is safe for
// concurrent use; after close every method fails with ErrClosed.
type store interface {
	// get returns the user with key k, or nil and no error when there is
	// none. The record is the store's current one: callers must not change
	// it.
	get(ctx context.Context, k string) (*record, error)
	// list returns all users sorted by key.
	list(ctx context.Context) ([]User, error)
	// insert adds r; an error wraps ErrExists when its key is taken.
	insert(ctx context.Context, r *record) error
	// setSecrets replaces the password hash and mechanism secrets of the
	// user with key k and sets its Updated time to now; an error wraps
	// ErrNotFound when there is no such user.
	setSecrets(ctx context.Context, k string, s secrets, now time.Time) error
	// remove deletes the user with key k; an error wraps ErrNotFound when
	// there is no such user.
	remove(ctx context.Context, k string) error
	// reload re-reads whatever the store keeps in memory.
	reload() error
	// close releases the store.
	close() error
}

// dirStore is a store that also keeps aliases and send-as grants (the
// PostgreSQL one; the file backend leaves them to the configuration).
// Addresses and domains arrive normalized.
type dirStore interface {
	// addAlias adds targets to the alias (creating it); targets it already
	// has are kept once.
	addAlias(ctx context.Context, alias string, targets []string) error
	// deleteAlias removes targets from the alias, or the whole alias when
	// targets is empty; an error wraps ErrNoEntry when nothing matched.
	deleteAlias(ctx context.Context, alias string, targets []string) error
	// aliases returns every alias with its targets in the order added,
	// sorted by alias key.
	aliases(ctx context.Context) ([]Alias, error)
	// addSendAs adds g to user's grants.
	addSendAs(ctx context.Context, user string, g SendAsGrant) error
	// deleteSendAs removes g from user's grants, or all of them when g is
	// empty; an error wraps ErrNoEntry when nothing matched.
	deleteSendAs(ctx context.Context, user string, g SendAsGrant) error
	// sendAs returns every user's grants by the user's address.
	sendAs(ctx context.Context) (map[string]SendAsGrant, error)
}

// record is one user as a store holds it.
type record struct {
	user User
	secrets
}

// secrets are what a user's password leaves behind: the Argon2id hash that
// PLAIN and LOGIN check, and the per-mechanism secrets that SCRAM and
// CRAM-MD5 need. None of them is the password.
type secrets struct {
	hash     string // PHC string as stored
	phc      phc    // hash, parsed
	scram256 *scramSecret
	scram1   *scramSecret
	cram     *cramSecret // only for users who opted in
}

// scramSecret is a user's SCRAM verifier for one hash function (RFC 5802
// §3): the salt and iteration count of the salted password, and the
// StoredKey and ServerKey derived from it.
type scramSecret struct {
	salt       []byte
	iterations int
	storedKey  []byte
	serverKey  []byte
}

// cramSecret holds the HMAC-MD5 intermediate contexts of a password, the
// MD5 states after the inner and outer padded key blocks (RFC 2104), as
// Dovecot's CRAM-MD5 scheme keeps them. They are equivalent to the password
// for CRAM-MD5 (RFC 2195) but do not reveal it.
type cramSecret struct {
	inner, outer [16]byte
}
