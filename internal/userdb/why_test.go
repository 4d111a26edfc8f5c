package userdb

import (
	"context"
	"errors"
	"strings"
	"testing"

	"postern/internal/sasl"
)

// TestFailureKinds checks that a failed login says which credential was
// wrong, for the server's log: sasl.ErrUnknownUser or
// sasl.ErrBadPassword, each an sasl.ErrInvalidCredentials, through
// CheckPassword (PLAIN, LOGIN), SCRAM and CRAM-MD5.
func TestFailureKinds(t *testing.T) { eachBackend(t, testFailureKinds) }

func testFailureKinds(t *testing.T, open opener) {
	clk := newClock()
	db := open(t, clk, func(o *Options) { o.CacheSize = -1 })
	if err := db.Add("alice@example.org", "pencil", SetOptions{CRAMMD5: true}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	want := func(what string, err, kind error) {
		t.Helper()
		if !errors.Is(err, kind) || !errors.Is(err, sasl.ErrInvalidCredentials) {
			t.Errorf("%s: %v; want %v", what, err, kind)
		}
	}
	for _, tc := range []struct {
		user, pw string
		kind     error
	}{
		{"alice@example.org", "pencil2", sasl.ErrBadPassword},
		{"alice@example.org", "", sasl.ErrBadPassword},
		{"alice@example.org", strings.Repeat("p", 2000), sasl.ErrBadPassword},
		{"bob@example.org", "pencil", sasl.ErrUnknownUser},
		{strings.Repeat("a", 300), "pencil", sasl.ErrUnknownUser},
	} {
		_, err := db.CheckPassword(ctx, tc.user, tc.pw)
		want("CheckPassword("+tc.user[:min(20, len(tc.user))]+")", err, tc.kind)
	}
	_, err := scramLogin(t, db, sasl.HashSHA256, "alice@example.org", "pencil2")
	want("SCRAM, wrong password", err, sasl.ErrBadPassword)
	_, err = scramLogin(t, db, sasl.HashSHA256, "nobody@example.org", "pencil")
	want("SCRAM, unknown user", err, sasl.ErrUnknownUser)
	_, err = cramLogin(t, db, clk, "alice@example.org", "pencil2")
	want("CRAM-MD5, wrong password", err, sasl.ErrBadPassword)
	_, err = cramLogin(t, db, clk, "nobody@example.org", "pencil")
	want("CRAM-MD5, unknown user", err, sasl.ErrUnknownUser)
}
