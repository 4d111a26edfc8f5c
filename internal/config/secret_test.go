package config

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// secretFile writes content to a new file of mode 0600 and returns its path.
func secretFile(t *testing.T, content string) string {
	t.Helper()
	return writeIn(t, t.TempDir(), "secret", content)
}

// The one rule: the first line, without its end and the blanks around it.
func TestReadSecret(t *testing.T) {
	for _, tt := range []struct {
		name, content, want string
	}{
		{"no newline", "hunter2", "hunter2"},
		{"LF", "hunter2\n", "hunter2"},
		{"CRLF", "hunter2\r\n", "hunter2"},
		{"later lines ignored", "hunter2\nsomething else\n", "hunter2"},
		{"blanks around", " \thunter2 \r\n", "hunter2"},
		{"blanks inside kept", "correct horse battery\n", "correct horse battery"},
		{"a DSN", "postgres://postern:s3cret@db/postern?sslmode=verify-full\n", "postgres://postern:s3cret@db/postern?sslmode=verify-full"},
		{"longest", strings.Repeat("x", MaxSecretLen) + "\r\n", strings.Repeat("x", MaxSecretLen)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadSecret(secretFile(t, tt.content))
			if err != nil || got != tt.want {
				t.Fatalf("ReadSecret = %.40q, %v; want %.40q", got, err, tt.want)
			}
		})
	}
	for _, tt := range []struct {
		name, content, want string
	}{
		{"empty file", "", "the first line is empty"},
		{"empty first line", "\nhunter2\n", "the first line is empty"},
		{"blank first line", " \t\r\nhunter2\n", "the first line is empty"},
		{"too long", strings.Repeat("x", MaxSecretLen+1) + "\n", "longer than 65536 bytes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := secretFile(t, tt.content)
			got, err := ReadSecret(p)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), p) {
				t.Fatalf("ReadSecret = %.40q, %v; want an error naming %s and saying %q", got, err, p, tt.want)
			}
		})
	}
	if _, err := ReadSecret(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v, want fs.ErrNotExist", err)
	}
}

// secretsConfig returns a configuration that uses every secret file,
// each holding its key's name with a line end of its own.
func secretsConfig(t *testing.T) *Config {
	t.Helper()
	c := Dev(t.TempDir())
	c.Source = "/etc/postern/postern.toml"
	c.Admin.HTTPAddress, c.Admin.TokenFile = "127.0.0.1:8443", secretFile(t, "0123456789abcdef-admin\n")
	c.Redis.Address, c.Redis.PasswordFile = "127.0.0.1:6379", secretFile(t, "redis-password\r\n")
	c.Smarthost.Address, c.Smarthost.Username, c.Smarthost.PasswordFile = "relay.example.net:587", "u", secretFile(t, "smarthost-password")
	c.OAuth.IntrospectionURL, c.OAuth.ClientID, c.OAuth.ClientSecretFile = "https://idp.example/introspect", "postern", secretFile(t, " oauth-secret \nnext\n")
	c.Directory.Backend, c.Directory.PostgresDSNFile = DirectoryPostgres, secretFile(t, "postgres://u:p@db/postern\n")
	return c
}

func TestReadSecrets(t *testing.T) {
	c := secretsConfig(t)
	s, err := c.ReadSecrets()
	want := Secrets{AdminToken: "0123456789abcdef-admin", RedisPassword: "redis-password",
		SmarthostPassword: "smarthost-password", OAuthClientSecret: "oauth-secret"}
	if err != nil || s != want {
		t.Fatalf("ReadSecrets = %+v, %v; want %+v", s, err, want)
	}
	dsn, err := c.PostgresDSN()
	if err != nil || dsn != "postgres://u:p@db/postern" {
		t.Fatalf("PostgresDSN = %q, %v", dsn, err)
	}
	// Printing the secrets shows none of them.
	for _, out := range []string{s.String(), fmt.Sprintf("%v %+v %#v %s", s, s, s, s)} {
		for _, v := range []string{want.AdminToken, want.RedisPassword, want.SmarthostPassword, want.OAuthClientSecret} {
			if strings.Contains(out, v) {
				t.Fatalf("%q shows the secret %q", out, v)
			}
		}
	}
}

// Every file that cannot be used is named by its key, all at once.
func TestReadSecretsErrors(t *testing.T) {
	c := secretsConfig(t)
	missing := filepath.Join(t.TempDir(), "missing")
	c.Admin.TokenFile = secretFile(t, "short\n")
	c.Redis.PasswordFile = missing
	c.Smarthost.PasswordFile = secretFile(t, "\n")
	c.OAuth.ClientSecretFile = missing
	c.Directory.PostgresDSNFile = missing
	_, err := c.ReadSecrets()
	if err == nil {
		t.Fatal("ReadSecrets: no error")
	}
	for _, want := range []string{
		"/etc/postern/postern.toml: admin.token_file: " + c.Admin.TokenFile + ": the token must be at least 16 characters",
		"/etc/postern/postern.toml: redis.password_file: open " + missing,
		"/etc/postern/postern.toml: smarthost.password_file: " + c.Smarthost.PasswordFile + ": the first line is empty",
		"/etc/postern/postern.toml: oauth.client_secret_file: open " + missing,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q\ndoes not say %q", err, want)
		}
	}
	if _, err := c.PostgresDSN(); err == nil || !strings.Contains(err.Error(), "directory.postgres_dsn_file: open "+missing) {
		t.Errorf("PostgresDSN error %v", err)
	}
}

// A secret file whose feature is off is not read: a stale key must not
// stop the server.
func TestReadSecretsOnlyInUse(t *testing.T) {
	c := secretsConfig(t)
	missing := filepath.Join(t.TempDir(), "missing")
	c.Admin.HTTPAddress, c.Admin.TokenFile = "", missing
	c.Redis.Address, c.Redis.PasswordFile = "", missing
	c.Smarthost.Address, c.Smarthost.PasswordFile = "", missing
	c.OAuth.IntrospectionURL, c.OAuth.ClientSecretFile = "", missing
	c.Directory.Backend, c.Directory.PostgresDSNFile = DirectoryFile, missing
	s, err := c.ReadSecrets()
	if err != nil || s != (Secrets{}) {
		t.Fatalf("ReadSecrets = %v, %v; want nothing read", s, err)
	}
	if dsn, err := c.PostgresDSN(); dsn != "" || err != nil {
		t.Fatalf("PostgresDSN = %q, %v", dsn, err)
	}
	// [redis] without password_file: no AUTH password.
	c.Redis.Address = "127.0.0.1:6379"
	c.Redis.PasswordFile = ""
	if s, err := c.ReadSecrets(); err != nil || s.RedisPassword != "" {
		t.Fatalf("ReadSecrets = %v, %v", s, err)
	}
}

// A list of secrets (srs.secret_file): one a line by the same rule,
// blank lines and # comments skipped.
func TestReadSecretList(t *testing.T) {
	got, err := ReadSecretList(secretFile(t, "# current first\r\n new-secret \n\n\told-secret\n"))
	if err != nil || !slices.Equal(got, []string{"new-secret", "old-secret"}) {
		t.Fatalf("ReadSecretList = %q, %v", got, err)
	}
	for _, content := range []string{"", "\n# only a comment\n \n"} {
		p := secretFile(t, content)
		if _, err := ReadSecretList(p); err == nil || !strings.Contains(err.Error(), p+" holds no secret") {
			t.Errorf("%q: %v", content, err)
		}
	}
}
