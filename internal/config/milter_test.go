package config

import (
	"slices"
	"testing"
	"time"
)

func TestMilters(t *testing.T) {
	src := `hostname = "mail.example.com"
[tls]
self_signed = true
[[milter]]
name = "rspamd"
address = "inet:127.0.0.1:11332"
roles = ["MX", "submission"]
default_action = "accept"
content_timeout = "2m"

[[milter]]
address = "unix:/run/opendkim/opendkim.sock"
roles = ["submission", "submissions"]
`
	c := loadText(t, t.TempDir(), src)
	want := []Milter{
		{Name: "rspamd", Address: "inet:127.0.0.1:11332", Roles: []Role{RoleMX, RoleSubmission}, DefaultAction: "accept",
			ConnectTimeout: 30 * time.Second, CommandTimeout: 30 * time.Second, ContentTimeout: 2 * time.Minute},
		{Name: "unix:/run/opendkim/opendkim.sock", Address: "unix:/run/opendkim/opendkim.sock", Roles: []Role{RoleSubmission, RoleSubmissions},
			DefaultAction: "tempfail", ConnectTimeout: 30 * time.Second, CommandTimeout: 30 * time.Second, ContentTimeout: 5 * time.Minute},
	}
	if !slices.EqualFunc(c.Milters, want, func(a, b Milter) bool {
		return a.Name == b.Name && a.Address == b.Address && slices.Equal(a.Roles, b.Roles) && a.DefaultAction == b.DefaultAction &&
			a.ConnectTimeout == b.ConnectTimeout && a.CommandTimeout == b.CommandTimeout && a.ContentTimeout == b.ContentTimeout
	}) {
		t.Errorf("milters\n%+v\nwant\n%+v", c.Milters, want)
	}
	if got := c.MiltersFor(RoleSubmission); len(got) != 2 || got[0].Name != "rspamd" {
		t.Errorf("submission milters %+v", got)
	}
	if got := c.MiltersFor(RoleMX); len(got) != 1 {
		t.Errorf("mx milters %+v", got)
	}
	// Without roles, a milter serves every listener.
	c = loadText(t, t.TempDir(), selfSigned+"[[milter]]\naddress = \"inet:[::1]:8891\"\n")
	if got := c.MiltersFor(RoleSubmissions); len(got) != 1 || got[0].Name != "inet:[::1]:8891" {
		t.Errorf("milters %+v", c.Milters)
	}
}

func TestMiltersRefused(t *testing.T) {
	src := `hostname = "mail.example.com"
[tls]
self_signed = true
[[milter]]
name = "a"
address = "inet:11332@localhost"
roles = ["relay"]
default_action = "reject"
command_timeout = "0s"
colour = "red"

[[milter]]
name = "a"
address = "tcp:localhost:1"
roles = []
`
	_, err := parse("postern.toml", []byte(src), fixedHost)
	checkSays(t, err,
		`milter[0].address: "inet:11332@localhost": want inet:host:port or unix:/path`,
		`milter[0].roles[0]: "relay" is not mx, submission or submissions`,
		`milter[0].default_action: "reject" is not tempfail or accept`,
		`milter[0].command_timeout: must be more than 0`,
		`unknown key "milter.colour"`,
		`milter[1].name: "a" is already the name of milter[0]`,
		`milter[1].address: "tcp:localhost:1"`,
		`milter[1].roles: must name at least one role`,
	)
}
