package server

import (
	"log/slog"

	"postern/internal/config"
	"postern/internal/mailauth"
	"postern/internal/pkcs11"
)

// loadDKIMKey loads a [[mail_auth.dkim_key]]: its key_file, or the key
// in a PKCS#11 token its pkcs11: URI names (from tokens).
func loadDKIMKey(dk config.DKIMKey, tokens *pkcs11.Tokens, log *slog.Logger) (mailauth.SigningKey, error) {
	sk := mailauth.SigningKey{Domain: dk.Domain, Selector: dk.Selector}
	var err error
	if config.IsKeyURI(dk.KeyFile) {
		sk.Key, err = tokenKey(tokens, dk.KeyFile, log) // pkcs11.go
	} else {
		sk.Key, err = mailauth.LoadKeyFile(dk.KeyFile)
	}
	return sk, err
}
