package server

import (
	"crypto"
	"errors"
	"fmt"
	"log/slog"

	"postern/internal/config"
	"postern/internal/pkcs11"
	"postern/internal/tlsconf"
)

// newTokens returns the access to the PKCS#11 tokens of [pkcs11]. The
// PIN file is read as every secret file is (config.ReadSecret). Nothing
// is opened until a key is asked for. The keys count into met (nil: a
// set registered nowhere).
func newTokens(cfg *config.Config, log *slog.Logger, met *pkcs11.Metrics) *pkcs11.Tokens {
	o := pkcs11Options(cfg)
	o.Logger, o.Metrics = log, met
	return pkcs11.New(o)
}

// tokenKey returns the key uri names from tokens, logged once found; an
// error carries the fix.
func tokenKey(tokens *pkcs11.Tokens, uri string, log *slog.Logger) (*pkcs11.Key, error) {
	k, err := tokens.Key(uri)
	if err != nil {
		var pe *pkcs11.Error
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("%w\n(fix: %s)", err, pe.Fix)
		}
		return nil, err
	}
	in := k.Info()
	log.Info("PKCS#11 key found", "key", in.URI, "algorithm", in.Algorithm, "label", in.Label, "id", in.ID, "token", in.Token, "module", in.Module)
	return k, nil
}

// tokenKeys is tokenKey as the tlsconf.KeyLoader of certificates.
func tokenKeys(tokens *pkcs11.Tokens, log *slog.Logger) tlsconf.KeyLoader {
	return func(uri string) (crypto.Signer, error) {
		k, err := tokenKey(tokens, uri, log)
		if err != nil {
			return nil, err
		}
		return k, nil
	}
}
