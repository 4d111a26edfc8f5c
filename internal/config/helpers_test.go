package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// selfSigned is the head of most test files: a host name and a
// certificate that Postern makes itself, so that nothing else is needed.
const selfSigned = "hostname = \"mail.example.com\"\n[tls]\nself_signed = true\n"

// fixedHost is the system host name the tests inject.
func fixedHost() (string, error) { return "Host.Example.NET", nil }

// writeIn stores text as the file name in dir, of mode 0600, and returns
// its path.
func writeIn(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// write stores text as postern.toml in a new directory and returns its path.
func write(t *testing.T, text string) string {
	t.Helper()
	return writeIn(t, t.TempDir(), "postern.toml", text)
}

// loadText loads text as a file in dir, failing the test if it is
// refused. Relative paths in text resolve against dir (the same dir for
// both sides of a comparison resolves them alike).
func loadText(t *testing.T, dir, text string) *Config {
	t.Helper()
	c, err := load(writeIn(t, dir, "postern.toml", text), fixedHost)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// loadString loads selfSigned followed by the tables in s.
func loadString(t *testing.T, s string) (*Config, error) {
	t.Helper()
	return Load(write(t, selfSigned+s+"\n"))
}

// loadTop loads a file with the top-level keys in top (which must come
// before the first table) and a self-signed certificate.
func loadTop(t *testing.T, top string) (*Config, error) {
	t.Helper()
	return Load(write(t, "hostname = \"mail.example.com\"\n"+top+"\n[tls]\nself_signed = true\n"))
}

// refusal is a file that Load must refuse: its TOML, after a head the
// test names, and a text that the error must contain.
type refusal struct{ toml, want string }

// checkRefusals loads head followed by each refusal's TOML and checks
// that the error says what the refusal wants.
func checkRefusals(t *testing.T, head string, refusals []refusal) {
	t.Helper()
	for _, r := range refusals {
		_, err := Load(write(t, head+r.toml+"\n"))
		if err == nil || !strings.Contains(err.Error(), r.want) {
			t.Errorf("%q: got %v, want %q", r.toml, err, r.want)
		}
	}
}

// checkSays checks that err says each of wants: Load reports every
// problem of a file at once.
func checkSays(t *testing.T, err error, wants ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted; want errors saying %q", wants)
	}
	for _, w := range wants {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q:\n%v", w, err)
		}
	}
}

// checkErrors checks that err joins exactly the errors with texts want,
// each a *FieldError.
func checkErrors(t *testing.T, err error, want []string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want %q", want)
	}
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("error %q is not a joined error", err)
	}
	var got []string
	for _, e := range j.Unwrap() {
		var fe *FieldError
		if !errors.As(e, &fe) {
			t.Errorf("%q is not a *FieldError", e)
		}
		got = append(got, e.Error())
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
