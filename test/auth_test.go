package test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/xdg-go/scram"

	"postern/internal/testcert"
)

// editConfig replaces old with new in the server's configuration file.
func (s *server) editConfig(old, new string) {
	s.t.Helper()
	os.WriteFile(s.config, []byte(s.configReplaced(old, new)), 0o600)
}

// configReplaced returns the server's configuration with the first old
// replaced by new, failing the test when it lacks old.
func (s *server) configReplaced(old, new string) string {
	s.t.Helper()
	b, err := os.ReadFile(s.config)
	if err != nil || !strings.Contains(string(b), old) {
		s.t.Fatalf("config lacks %q", old)
	}
	return strings.Replace(string(b), old, new, 1)
}

// clientCA makes a CA and a client certificate for email, signed by it.
func clientCA(t *testing.T, dir, email string) (caFile, certFile, keyFile string) {
	t.Helper()
	ca := testcert.NewCA()
	caFile, certFile, keyFile = filepath.Join(dir, "clients-ca.pem"), filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key")
	ca.WriteFile(t, caFile)
	testcert.WriteFiles(t, ca.Issue(testcert.Spec{EmailAddresses: []string{email}, Client: true}), certFile, keyFile)
	return caFile, certFile, keyFile
}

// accessToken writes a JWKS with a fresh ES256 key and returns a token
// signed with it for user.
func accessToken(t *testing.T, jwksFile, user string) string {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}}
	b, _ := json.Marshal(set)
	os.WriteFile(jwksFile, b, 0o600)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
		(&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(signer).Claims(jwt.Claims{Issuer: "https://idp.example.test", Audience: jwt.Audience{"postern"},
		Expiry: jwt.NewNumericDate(time.Now().Add(time.Hour)), IssuedAt: jwt.NewNumericDate(time.Now())}).
		Claims(map[string]any{"email": user}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// scramAuth is a net/smtp Auth for SCRAM-SHA-256-PLUS bound to the
// session's TLS channel.
type scramAuth struct{ conv *scram.ClientConversation }

func (a *scramAuth) Start(*smtp.ServerInfo) (string, []byte, error) {
	first, err := a.conv.Step("")
	return "SCRAM-SHA-256-PLUS", []byte(first), err
}

func (a *scramAuth) Next(from []byte, more bool) ([]byte, error) {
	if !more {
		return nil, nil
	}
	if a.conv.Done() {
		return nil, errors.New("unexpected challenge")
	}
	out, err := a.conv.Step(string(from))
	if err != nil {
		return nil, err
	}
	return []byte(out), nil
}

// TestAuthenticationBreadth drives issue 5's mechanisms through the
// binary with real clients: CRAM-MD5 (swaks, Python's smtplib),
// SCRAM-SHA-256-PLUS with tls-exporter channel binding (Go), OAUTHBEARER
// with a JWT from a JWKS file (curl) and EXTERNAL with a client
// certificate (curl).
func TestAuthenticationBreadth(t *testing.T) {
	integration(t)
	swaks := needTool(t, "swaks")
	curl := needTool(t, "curl")
	python := needTool(t, "python3")
	dir := t.TempDir()
	const user, pass = "alice@example.test", "alice-secret-9"
	_, certFile, keyFile := clientCA(t, dir, user) // the CA is clients-ca.pem in dir
	jwks := filepath.Join(dir, "jwks.json")
	token := accessToken(t, jwks, user)
	s := testConfig(t, dir, "\n[oauth]\njwks_file = \"jwks.json\"\nissuer = \"https://idp.example.test\"\naudience = \"postern\"\n")
	s.editConfig("self_signed = true", "self_signed = true\nclient_ca_file = \"clients-ca.pem\"")
	s.editConfig("role = \"submission\"\n", "role = \"submission\"\nclient_certificates = \"request\"\n"+
		"auth_mechanisms = [\"SCRAM-SHA-256\", \"CRAM-MD5\", \"OAUTHBEARER\", \"EXTERNAL\", \"PLAIN\", \"LOGIN\"]\n")
	s.start()
	if out, err := s.run(pass+"\n", "user", "add", user, "--cram-md5"); err != nil {
		t.Fatalf("user add --cram-md5: %v\n%s", err, out)
	}
	s.waitLogin(user, pass).Quit()
	mail := func(subject string) string { return "From: " + user + "\r\nSubject: " + subject + "\r\n\r\nx\r\n" }

	t.Run("swaks CRAM-MD5", func(t *testing.T) {
		out, err := exec.Command(swaks, "--server", s.sub, "--tls", "--auth", "CRAM-MD5", "--auth-user", user,
			"--auth-password", pass, "--from", user, "--to", user, "--header", "Subject: cram-swaks").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "235 ") {
			t.Fatalf("swaks CRAM-MD5: %v\n%s", err, out)
		}
	})
	t.Run("smtplib login picks CRAM-MD5", func(t *testing.T) {
		script := `
import smtplib, ssl, sys
host, port = sys.argv[1].rsplit(":", 1)
s = smtplib.SMTP(host, int(port), timeout=10)
s.starttls(context=ssl._create_unverified_context())
s.ehlo()
assert "CRAM-MD5" in s.esmtp_features["auth"], s.esmtp_features["auth"]
s.login(sys.argv[2], sys.argv[3])
s.quit()
print("ok")
`
		out, err := exec.Command(python, "-c", script, s.sub, user, pass).CombinedOutput()
		if err != nil {
			t.Fatalf("smtplib: %v\n%s", err, out)
		}
		if !strings.Contains(s.stderr.String(), "mechanism=CRAM-MD5 user="+user) {
			t.Errorf("no CRAM-MD5 auth event in the log")
		}
	})
	t.Run("SCRAM-SHA-256-PLUS", func(t *testing.T) {
		c, err := smtp.Dial(s.sub)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Hello("client.test")
		if err := c.StartTLS(&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}); err != nil {
			t.Fatal(err)
		}
		cs, _ := c.TLSConnectionState()
		cb, err := scram.NewTLSExporterBinding(&cs)
		if err != nil {
			t.Fatal(err)
		}
		cl, _ := scram.SHA256.NewClient(user, pass, "")
		a := &scramAuth{conv: cl.NewConversationWithChannelBinding(cb)}
		if err := c.Auth(a); err != nil {
			t.Fatalf("SCRAM-SHA-256-PLUS: %v", err)
		}
		if !a.conv.Valid() {
			t.Fatal("server signature not verified")
		}
		if err := send(c, user, user, mail("scram-marker")); err != nil {
			t.Fatal(err)
		}
		s.waitMaildir(user, "scram-marker")
	})
	t.Run("curl OAUTHBEARER", func(t *testing.T) {
		cmd := exec.Command(curl, "-sS", "--ssl-reqd", "-k", "smtp://"+s.sub, "--mail-from", user, "--mail-rcpt", user,
			"--user", user, "--oauth2-bearer", token, "--upload-file", "-")
		cmd.Stdin = strings.NewReader(mail("oauth-marker"))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("curl OAUTHBEARER: %v\n%s", err, out)
		}
		s.waitMaildir(user, "oauth-marker")
		bad := exec.Command(curl, "-sS", "--ssl-reqd", "-k", "smtp://"+s.sub, "--mail-from", user, "--mail-rcpt", user,
			"--user", user, "--oauth2-bearer", token[:len(token)-4]+"AAAA", "--upload-file", "-")
		bad.Stdin = strings.NewReader(mail("x"))
		if out, err := bad.CombinedOutput(); err == nil {
			t.Fatalf("forged token accepted:\n%s", out)
		}
	})
	t.Run("curl EXTERNAL with a client certificate", func(t *testing.T) {
		cmd := exec.Command(curl, "-sS", "--ssl-reqd", "-k", "smtp://"+s.sub, "--mail-from", user, "--mail-rcpt", user,
			"--cert", certFile, "--key", keyFile, "--login-options", "AUTH=EXTERNAL", "--user", user+":", "--upload-file", "-")
		cmd.Stdin = strings.NewReader(mail("external-marker"))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("curl EXTERNAL: %v\n%s", err, out)
		}
		s.waitMaildir(user, "external-marker")
	})
}
