package config

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestLocalMail(t *testing.T) {
	base := "hostname = \"mail.example.com\"\nlocal_domains = [\"example.com\", \"example.org\"]\n[tls]\nself_signed = true\n"
	c, err := load(write(t, base), fixedHost)
	if err != nil {
		t.Fatal(err)
	}
	// Resolved here: the Config holds the values in effect.
	if c.Sendmail.Domain != "example.com" || c.SRS.MaxAgeDays != 21 || c.SRS.SecretFile != c.DefaultSRSSecretFile() ||
		c.SRS.SecretFile != filepath.Join(c.DataDir, "srs.secret") {
		t.Errorf("defaults: %+v %+v", c.Sendmail, c.SRS)
	}
	p := write(t, base+"[sendmail]\ndomain = \"Example.ORG\"\n[srs]\ndomain = \"example.org\"\nsecret_file = \"srs.key\"\nmax_age_days = 7\n")
	c, err = load(p, fixedHost)
	if err != nil {
		t.Fatal(err)
	}
	if c.Sendmail.Domain != "example.org" || c.SRS.Domain != "example.org" || c.SRS.MaxAgeDays != 7 ||
		c.SRS.SecretFile != filepath.Join(filepath.Dir(p), "srs.key") {
		t.Errorf("set: %+v %+v", c.Sendmail, c.SRS)
	}
	_, err = load(write(t, base+"[sendmail]\ndomain = \"not a domain\"\nbogus = 1\n[srs]\ndomain = \"elsewhere.example\"\nmax_age_days = 2000\n"), fixedHost)
	checkSays(t, err,
		`sendmail.domain: "not a domain" is not a valid DNS name`,
		`unknown key "sendmail.bogus"`,
		`srs.domain: "elsewhere.example" is not one of local_domains`,
		`srs.max_age_days: `,
	)
}

// TestAliasSingleString: an alias to one address may be written as a
// string, not only as an array of one.
func TestAliasSingleString(t *testing.T) {
	c, err := load(write(t, "hostname = \"mail.example.com\"\nlocal_domains = [\"example.com\"]\n[tls]\nself_signed = true\n"+
		"[aliases]\n\"info@example.com\" = \"alice@example.com\"\n\"team@example.com\" = [\"alice@example.com\", \"bob@elsewhere.example\"]\n"), fixedHost)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Aliases["info@example.com"], []string{"alice@example.com"}) ||
		!slices.Equal(c.Aliases["team@example.com"], []string{"alice@example.com", "bob@elsewhere.example"}) {
		t.Errorf("aliases %v", c.Aliases)
	}
	_, err = load(write(t, "hostname = \"mail.example.com\"\n[tls]\nself_signed = true\n[aliases]\n\"info@mail.example.com\" = 3\n"), fixedHost)
	if err == nil || !strings.Contains(err.Error(), `aliases."info@mail.example.com": expected an address or an array of addresses, got integer 3`) {
		t.Errorf("integer alias: %v", err)
	}
}
