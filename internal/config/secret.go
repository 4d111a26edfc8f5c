package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// MaxSecretLen bounds the first line of a secret file, in bytes.
const MaxSecretLen = 64 << 10

// ReadSecret reads the secret in the file at path, by the one rule of
// every key that names a secret file (SecretKeys, and the pin-source of a
// PKCS#11 URI): the secret is the file's first line, without its line
// end (LF or CRLF) and without the spaces and tabs around it. The rest of
// the file is ignored, so the file may end with a newline or not. A
// first line that is empty (or only blanks) is an error, as is one longer
// than MaxSecretLen: a secret is never empty.
func ReadSecret(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	// The first line, its CRLF and one byte more at most.
	b, err := io.ReadAll(io.LimitReader(f, MaxSecretLen+3))
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	if len(bytes.TrimSuffix(line, []byte("\r"))) > MaxSecretLen {
		return "", fmt.Errorf("%s: the first line is longer than %d bytes; a secret file holds the secret on its first line", path, MaxSecretLen)
	}
	s := string(bytes.Trim(line, " \t\r"))
	if s == "" {
		return "", fmt.Errorf("%s: the first line is empty; a secret file holds the secret on its first line", path)
	}
	return s, nil
}

// ReadSecretList reads a file of several secrets (srs.secret_file: the
// first signs, every one verifies), one a line by the rule of
// ReadSecret: each line without its end and the blanks around it. Blank
// lines and lines that start with # are skipped; at least one secret
// must remain.
func ReadSecretList(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.Trim(line, " \t\r")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if len(line) > MaxSecretLen {
			return nil, fmt.Errorf("%s: a line is longer than %d bytes", path, MaxSecretLen)
		}
		out = append(out, line)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s holds no secret (one a line; try: openssl rand -base64 32 > %s)", path, path)
	}
	return out, nil
}

// SecretKeys are the keys that name a secret file, each read by
// ReadSecret (srs.secret_file, a list, by ReadSecretList);
// pkcs11.pin_file (and pin-source) is read by the PKCS#11 access when a
// key in the token is first used.
var SecretKeys = []string{
	"admin.token_file", "redis.password_file", "smarthost.password_file",
	"oauth.client_secret_file", "directory.postgres_dsn_file", "pkcs11.pin_file",
	"srs.secret_file",
}

// Secrets holds the secrets that the keys of a Config name, read by
// ReadSecrets. Keep it apart from the Config, which is printed, logged
// and compared: its String method shows which secrets are set, never
// their values.
type Secrets struct {
	// AdminToken is admin.token_file's, when admin.http_address is set:
	// at least MinAdminToken characters.
	AdminToken string
	// RedisPassword is redis.password_file's, when redis.address is set.
	RedisPassword string
	// SmarthostPassword is smarthost.password_file's, when
	// smarthost.address is set.
	SmarthostPassword string
	// OAuthClientSecret is oauth.client_secret_file's, when
	// oauth.introspection_url is set.
	OAuthClientSecret string
}

// String names the secrets that are set, without their values.
func (s Secrets) String() string {
	set := func(v string) string {
		if v == "" {
			return "unset"
		}
		return "set"
	}
	return fmt.Sprintf("{AdminToken:%s RedisPassword:%s SmarthostPassword:%s OAuthClientSecret:%s}",
		set(s.AdminToken), set(s.RedisPassword), set(s.SmarthostPassword), set(s.OAuthClientSecret))
}

// GoString is String, so that %#v shows no secret either.
func (s Secrets) GoString() string { return "config.Secrets" + s.String() }

// ReadSecrets reads, by ReadSecret, every secret file the configuration
// uses: the files of keys whose feature is on (admin.token_file with
// admin.http_address, and so on). Its error joins a FieldError for each
// file that cannot be used, naming the key. The PostgreSQL connection
// string is read by PostgresDSN, since commands other than serve need it
// alone.
func (c *Config) ReadSecrets() (Secrets, error) {
	var s Secrets
	p := &problems{file: c.Source}
	read := func(key, path string, dst *string) {
		v, err := ReadSecret(path)
		if err != nil {
			p.add(key, err)
			return
		}
		*dst = v
	}
	if c.Admin.HTTPAddress != "" {
		read("admin.token_file", c.Admin.TokenFile, &s.AdminToken)
		if s.AdminToken != "" && len(s.AdminToken) < MinAdminToken {
			p.addf("admin.token_file", "%s: the token must be at least %d characters (try: openssl rand -hex 32 > %s)",
				c.Admin.TokenFile, MinAdminToken, c.Admin.TokenFile)
			s.AdminToken = ""
		}
	}
	if c.Redis.Address != "" && c.Redis.PasswordFile != "" {
		read("redis.password_file", c.Redis.PasswordFile, &s.RedisPassword)
	}
	if c.Smarthost.Address != "" && c.Smarthost.PasswordFile != "" {
		read("smarthost.password_file", c.Smarthost.PasswordFile, &s.SmarthostPassword)
	}
	if c.OAuth.IntrospectionURL != "" {
		read("oauth.client_secret_file", c.OAuth.ClientSecretFile, &s.OAuthClientSecret)
	}
	return s, errors.Join(p.errs...)
}

// PostgresDSN reads the PostgreSQL connection string of
// directory.postgres_dsn_file by ReadSecret; "" when the backend is not
// PostgreSQL.
func (c *Config) PostgresDSN() (string, error) {
	if c.Directory.Backend != DirectoryPostgres {
		return "", nil
	}
	dsn, err := ReadSecret(c.Directory.PostgresDSNFile)
	if err != nil {
		return "", &FieldError{File: c.Source, Key: "directory.postgres_dsn_file", Err: err}
	}
	return dsn, nil
}

// SRSSecrets reads srs.secret_file by ReadSecretList; its error is a
// FieldError naming the key.
func (c *Config) SRSSecrets() ([]string, error) {
	list, err := ReadSecretList(c.SRS.SecretFile)
	if err != nil {
		return nil, &FieldError{File: c.Source, Key: "srs.secret_file", Err: err}
	}
	return list, nil
}
