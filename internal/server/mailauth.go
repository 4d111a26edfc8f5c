package server

// The filters of [mail_auth] (smtpd.CheckFilter, smtpd.SignFilter), built
// from the configuration and the DKIM keys.

import (
	"fmt"
	"log/slog"

	"postern/internal/config"
	"postern/internal/dns"
	"postern/internal/mailauth"
	"postern/internal/pkcs11"
	"postern/internal/smtpd"
)

// mailAuthFilters builds the Filters of [mail_auth]: for mx listeners
// (nil when check is off) and for submission listeners (nil when sign is
// off or data_dir/dkim holds no key). isLocal reports local domains;
// DKIM keys named by pkcs11: URIs come from tokens.
func mailAuthFilters(cfg *config.Config, r dns.Resolver, isLocal func(domain string) bool, log *slog.Logger, tokens *pkcs11.Tokens) (mx, submission smtpd.Filter, err error) {
	if mx, err = checkFilter(cfg, r, isLocal, log, nil); err != nil {
		return nil, nil, err
	}
	submission, keys, err := signingFilter(cfg, log, tokens)
	if err != nil {
		return nil, nil, err
	}
	for _, k := range keys {
		log.Info("DKIM key loaded", "domain", k.Domain, "selector", k.Selector, "algorithm", string(k.Algorithm()))
	}
	return mx, submission, nil
}

// checkFilter builds the Filter of mx listeners from [mail_auth]: nil
// when check is off. It counts into met (nil: a set registered nowhere).
func checkFilter(cfg *config.Config, r dns.Resolver, isLocal func(domain string) bool, log *slog.Logger, met *mailauth.CheckMetrics) (smtpd.Filter, error) {
	if !cfg.MailAuth.Check {
		return nil, nil
	}
	o := checkerOptions(cfg)
	o.Resolver, o.IsLocalDomain, o.Logger, o.Metrics = r, isLocal, log, met
	c, err := mailauth.NewChecker(o)
	if err != nil {
		return nil, fmt.Errorf("serve: mail_auth: %w", err)
	}
	return smtpd.CheckFilter{Checker: c}, nil
}

// signingFilter builds the Filter of submission listeners from
// [mail_auth] and the keys in data_dir/dkim, with the keys it signs
// with: nil when sign is off or there is no key.
func signingFilter(cfg *config.Config, log *slog.Logger, tokens *pkcs11.Tokens) (smtpd.Filter, []mailauth.SigningKey, error) {
	ma := cfg.MailAuth
	if !ma.Sign {
		return nil, nil, nil
	}
	keys, err := mailauth.LoadKeys(cfg.DataDir)
	if err != nil {
		return nil, nil, fmt.Errorf("serve: mail_auth: %w", err)
	}
	for i, dk := range ma.DKIMKeys {
		k, err := loadDKIMKey(dk, tokens, log) // a file, or a key in a token (dkim.go)
		if err != nil {
			return nil, nil, fmt.Errorf("serve: mail_auth.dkim_key[%d]: %w", i, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, nil, nil
	}
	s, err := mailauth.NewSigner(keys, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("serve: mail_auth: %w", err)
	}
	return smtpd.SignFilter{Signer: s, Logger: log}, keys, nil
}
