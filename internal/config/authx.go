package config

import (
	"fmt"
	"math"
	"net/url"

	"strings"
	"time"
)

// SASLMechanisms are the names auth_mechanisms may list.
var SASLMechanisms = []string{
	"PLAIN", "LOGIN", "CRAM-MD5",
	"SCRAM-SHA-1", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS",
	"OAUTHBEARER", "XOAUTH2", "EXTERNAL",
}

// Defaults of [oauth].
const (
	// DefaultOAuthLeeway is oauth.leeway: the clock skew allowed on a
	// token's exp and nbf.
	DefaultOAuthLeeway = 30 * time.Second
	// DefaultJWTUserClaim is oauth.user_claim for JWTs (jwks_url,
	// jwks_file): the claim an OpenID Connect provider puts the address in.
	DefaultJWTUserClaim = "email"
	// DefaultIntrospectionUserClaim is oauth.user_claim for token
	// introspection: the member RFC 7662 §2.2 names for the user.
	DefaultIntrospectionUserClaim = "username"
)

// DefaultSCRAMIterations is auth.scram_iterations: the iteration count of
// new SCRAM verifiers, above the 4096 that RFC 7677 §4 and RFC 5802 §5.1
// ask for at least, still cheap enough to compute per password change.
const DefaultSCRAMIterations = 10000

// OAuth is the [oauth] table: how OAUTHBEARER and XOAUTH2 access tokens
// are checked, either locally as JWTs against a JWKS, or by token
// introspection (RFC 7662). Empty means no OAuth mechanism is offered.
type OAuth struct {
	// JWKSURL (https) or JWKSFile holds the issuer's signing keys.
	JWKSURL, JWKSFile string
	// IntrospectionURL is the RFC 7662 endpoint; ClientID and
	// ClientSecretFile authenticate Postern to it.
	IntrospectionURL, ClientID, ClientSecretFile string
	// Issuer and Audience must match the token's iss and aud.
	Issuer, Audience string
	// UserClaim names the claim that holds the user: when the file does
	// not set it, DefaultJWTUserClaim, or DefaultIntrospectionUserClaim
	// with IntrospectionURL.
	UserClaim string
	// Leeway is the clock skew allowed on exp and nbf; 0 allows none.
	Leeway time.Duration
}

// deriveOAuth fills oauth.user_claim, whose default depends on how
// tokens are checked.
func (c *Config) deriveOAuth() {
	if c.OAuth.UserClaim != "" {
		return
	}
	c.OAuth.UserClaim = DefaultJWTUserClaim
	if c.OAuth.IntrospectionURL != "" {
		c.OAuth.UserClaim = DefaultIntrospectionUserClaim
	}
}

// Enabled reports whether any token check is configured.
func (o OAuth) Enabled() bool {
	return o.JWKSURL != "" || o.JWKSFile != "" || o.IntrospectionURL != ""
}

func (d *decoder) authExtra(t map[string]any, a *Auth) {
	if n, ok := d.integer(t, "scram_iterations", "auth.scram_iterations", 4096, math.MaxInt32); ok {
		a.SCRAMIterations = int(n)
	}
	if d.strs(t, "require_client_certificate", "auth.require_client_certificate", &a.RequireClientCertificate) {
		for i, u := range a.RequireClientCertificate {
			a.RequireClientCertificate[i] = normAddress(u)
		}
	}
	d.strTable(t, "auth", "certificate_map", "a user address", func(k, u string) {
		if a.CertificateMap == nil {
			a.CertificateMap = map[string]string{}
		}
		a.CertificateMap[k] = normAddress(u)
	})
}

func (d *decoder) oauth(t map[string]any, dir string, o *OAuth) {
	if t == nil {
		return
	}
	d.unknown(t, []string{"oauth"}, "jwks_url", "jwks_file", "introspection_url", "client_id",
		"client_secret_file", "issuer", "audience", "user_claim", "leeway")
	d.str(t, "jwks_url", "oauth.jwks_url", &o.JWKSURL)
	d.path(t, "jwks_file", "oauth.jwks_file", dir, &o.JWKSFile)
	d.str(t, "introspection_url", "oauth.introspection_url", &o.IntrospectionURL)
	d.str(t, "client_id", "oauth.client_id", &o.ClientID)
	d.path(t, "client_secret_file", "oauth.client_secret_file", dir, &o.ClientSecretFile)
	d.str(t, "issuer", "oauth.issuer", &o.Issuer)
	d.str(t, "audience", "oauth.audience", &o.Audience)
	d.str(t, "user_claim", "oauth.user_claim", &o.UserClaim)
	if du, ok := d.duration(t, "leeway", "oauth.leeway"); ok {
		o.Leeway = du
	}
}

// validateAuthExtra checks client certificates, SCRAM and [oauth].
func (c *Config) validateAuthExtra(p *problems) {
	for i, l := range c.Listeners {
		k := fmt.Sprintf("listener[%d].client_certificates", i)
		switch l.ClientCertificates {
		case "", "none":
		case "request", "require":
			if l.Role == RoleMX {
				p.addf(k, "not on an mx listener")
			}
			if c.TLS.ClientCAFile == "" {
				p.addf(k, "needs tls.client_ca_file (the CA client certificates must chain to)")
			}
		default:
			p.addf(k, "want \"none\", \"request\" or \"require\", got %q", l.ClientCertificates)
		}
		for _, m := range l.AuthMechanisms {
			if (m == "OAUTHBEARER" || m == "XOAUTH2") && !c.OAuth.Enabled() {
				p.addf(fmt.Sprintf("listener[%d].auth_mechanisms", i), "%s needs an [oauth] table", m)
			}
			if m == "EXTERNAL" && (l.ClientCertificates == "" || l.ClientCertificates == "none") {
				p.addf(fmt.Sprintf("listener[%d].auth_mechanisms", i), "EXTERNAL needs client_certificates = \"request\" or \"require\"")
			}
		}
	}
	for i, u := range c.Auth.RequireClientCertificate {
		if err := checkAddress(u); err != nil {
			p.addf(fmt.Sprintf("auth.require_client_certificate[%d]", i), "%v", err)
		}
	}
	for _, k := range sortedKeys(c.Auth.CertificateMap) {
		if !strings.HasPrefix(k, "sha256:") && !strings.Contains(k, "@") {
			p.addf(keyOf("auth", "certificate_map", k), "key must be \"sha256:HEX\" or an email address")
		}
	}
	o := c.OAuth
	n := 0
	for _, s := range []string{o.JWKSURL, o.JWKSFile, o.IntrospectionURL} {
		if s != "" {
			n++
		}
	}
	if n > 1 {
		p.addf("oauth", "set only one of jwks_url, jwks_file and introspection_url")
	}
	for _, f := range []struct{ key, v string }{{"oauth.jwks_url", o.JWKSURL}, {"oauth.introspection_url", o.IntrospectionURL}} {
		if f.v == "" {
			continue
		}
		if u, err := url.Parse(f.v); err != nil || u.Scheme != "https" || u.Host == "" {
			p.addf(f.key, "want an https:// URL, got %q", f.v)
		}
	}
	if o.IntrospectionURL != "" && (o.ClientID == "" || o.ClientSecretFile == "") {
		p.addf("oauth.client_id", "introspection needs client_id and client_secret_file")
	}
	if (o.JWKSURL != "" || o.JWKSFile != "") && (o.Issuer == "" || o.Audience == "") {
		p.addf("oauth.issuer", "JWT checks need issuer and audience")
	}
	if n == 0 && (o.Issuer != "" || o.Audience != "" || o.ClientID != "") {
		p.addf("oauth", "set one of jwks_url, jwks_file or introspection_url")
	}

}
