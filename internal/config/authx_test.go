package config

import (
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// TestAuthTables loads client certificates, SCRAM, the certificate map
// and [oauth].
func TestAuthTables(t *testing.T) {
	dir := t.TempDir()
	c := loadText(t, dir, `hostname = "mail.example.com"
[tls]
self_signed = true
client_ca_file = "clients.pem"
[auth]
scram_iterations = 8192
require_client_certificate = ["Bot@Example.com"]
[auth.certificate_map]
"sha256:00ff" = "bot@example.com"
[oauth]
jwks_url = "https://idp.example.com/jwks.json"
issuer = "https://idp.example.com"
audience = "postern"
user_claim = "upn"
leeway = "1m"
[[listener]]
role = "submissions"
address = ":465"
auth_mechanisms = ["scram-sha-256", "OAUTHBEARER", "EXTERNAL"]
client_certificates = "Request"
`)
	if c.TLS.ClientCAFile != filepath.Join(dir, "clients.pem") {
		t.Errorf("client_ca_file = %q", c.TLS.ClientCAFile)
	}
	l := c.Listeners[0]
	if l.ClientCertificates != "request" || !reflect.DeepEqual(l.AuthMechanisms, []string{"SCRAM-SHA-256", "OAUTHBEARER", "EXTERNAL"}) {
		t.Errorf("listener = %+v", l)
	}
	if c.Auth.SCRAMIterations != 8192 || !reflect.DeepEqual(c.Auth.RequireClientCertificate, []string{"Bot@example.com"}) ||
		c.Auth.CertificateMap["sha256:00ff"] != "bot@example.com" {
		t.Errorf("auth = %+v", c.Auth)
	}
	want := OAuth{JWKSURL: "https://idp.example.com/jwks.json", Issuer: "https://idp.example.com", Audience: "postern", UserClaim: "upn", Leeway: time.Minute}
	if c.OAuth != want {
		t.Errorf("oauth = %+v, want %+v", c.OAuth, want)
	}
}

// [oauth] is resolved here: user_claim by how tokens are checked, leeway
// 30s, and a leeway of "0s" is none, not the default.
func TestOAuthDefaults(t *testing.T) {
	for _, tt := range []struct {
		table, claim string
		leeway       time.Duration
	}{
		{"jwks_url = \"https://idp.example.com/jwks\"\nissuer = \"i\"\naudience = \"a\"", DefaultJWTUserClaim, DefaultOAuthLeeway},
		{"introspection_url = \"https://idp.example.com/i\"\nclient_id = \"c\"\nclient_secret_file = \"s\"", DefaultIntrospectionUserClaim, DefaultOAuthLeeway},
		{"jwks_file = \"jwks.json\"\nissuer = \"i\"\naudience = \"a\"\nleeway = \"0s\"", DefaultJWTUserClaim, 0},
	} {
		c := loadText(t, t.TempDir(), selfSigned+"[oauth]\n"+tt.table+"\n")
		if c.OAuth.UserClaim != tt.claim || c.OAuth.Leeway != tt.leeway {
			t.Errorf("%s: user_claim %q, leeway %v; want %q, %v", tt.table, c.OAuth.UserClaim, c.OAuth.Leeway, tt.claim, tt.leeway)
		}
	}
}

func TestAuthTableErrors(t *testing.T) {
	checkRefusals(t, selfSigned, []refusal{
		{"[auth]\nscram_iterations = 100", "auth.scram_iterations"},
		{"[[listener]]\nrole = \"submission\"\naddress = \":587\"\nclient_certificates = \"request\"", "needs tls.client_ca_file"},
		{"[[listener]]\nrole = \"submission\"\naddress = \":587\"\nclient_certificates = \"maybe\"", `want "none", "request" or "require", got "maybe"`},
		{"[[listener]]\nrole = \"submission\"\naddress = \":587\"\nauth_mechanisms = [\"XOAUTH2\"]", "XOAUTH2 needs an [oauth] table"},
		{"[[listener]]\nrole = \"submission\"\naddress = \":587\"\nauth_mechanisms = [\"EXTERNAL\"]", "EXTERNAL needs client_certificates"},
		{"[oauth]\njwks_url = \"http://idp/jwks\"\nissuer = \"i\"\naudience = \"a\"", `oauth.jwks_url: want an https:// URL`},
		{"[oauth]\njwks_file = \"k.json\"\nintrospection_url = \"https://i/x\"", "set only one of"},
		{"[oauth]\nintrospection_url = \"https://idp/introspect\"", "introspection needs client_id"},
		{"[oauth]\njwks_file = \"k.json\"", "JWT checks need issuer and audience"},
		{"[auth.certificate_map]\n\"nothing\" = \"a@example.com\"", `key must be "sha256:HEX" or an email address`},
	})
}
