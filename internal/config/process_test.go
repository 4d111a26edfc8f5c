package config

import (
	"strings"
	"testing"
)

func TestProcess(t *testing.T) {
	c, err := loadTop(t, "")
	if err != nil || c.Process != (Process{}) {
		t.Fatalf("default: %+v, %v", c.Process, err)
	}
	c, err = loadTop(t, "user = \"postern\"\ngroup = \"mail\"")
	if err != nil || c.Process != (Process{User: "postern", Group: "mail"}) {
		t.Fatalf("set: %+v, %v", c.Process, err)
	}
	for top, want := range map[string]string{
		`user = "a b"`:   `user: "a b" is not a user or group name`,
		`user = 7`:       `user: expected a string`,
		`group = "mail"`: `group: set user too`,
		`usr = "x"`:      `unknown key "usr"`,
	} {
		_, err := loadTop(t, top)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", top, err, want)
		}
	}
}
