package sendmail

import "testing"

// TestParseFlush: the forms of -q, and those refused.
func TestParseFlush(t *testing.T) {
	for rest, want := range map[string]Flush{"": "", "Rexample.com": "Rexample.com", "Sx.test": "Sx.test", "IABC": "IABC", "30m": "interval", "1h": "interval"} {
		if got, err := ParseFlush(rest); err != nil || got != want {
			t.Errorf("ParseFlush(%q) = %q, %v; want %q", rest, got, err, want)
		}
	}
	for _, rest := range []string{"R", "S", "I", "X", "-"} {
		if got, err := ParseFlush(rest); err == nil {
			t.Errorf("ParseFlush(%q) = %q, want an error", rest, got)
		}
	}
}

// TestFlushSelects: a message needs a deferred recipient and no hold;
// R matches a deferred recipient's domain (case and IDN folded), S the
// sender's, I the id; an interval selects nothing.
func TestFlushSelects(t *testing.T) {
	deferred := []string{"a@Example.COM", "b@bücher.test"}
	for _, c := range []struct {
		f        Flush
		id, from string
		held     bool
		deferred []string
		want     bool
	}{
		{"", "1", "s@x.test", false, deferred, true},
		{"", "1", "s@x.test", false, nil, false},
		{"", "1", "s@x.test", true, deferred, false},
		{"interval", "1", "s@x.test", false, deferred, false},
		{"Rexample.com", "1", "s@x.test", false, deferred, true},
		{"Rxn--bcher-kva.test", "1", "s@x.test", false, deferred, true},
		{"Rother.test", "1", "s@x.test", false, deferred, false},
		{"SX.test", "1", "s@x.test", false, deferred, true},
		{"Sexample.com", "1", "s@x.test", false, deferred, false},
		{"I1", "1", "s@x.test", false, deferred, true},
		{"I2", "1", "s@x.test", false, deferred, false},
	} {
		if got := c.f.Selects(c.id, c.from, c.held, c.deferred); got != c.want {
			t.Errorf("%q.Selects(%q, %q, %v, %q) = %v, want %v", c.f, c.id, c.from, c.held, c.deferred, got, c.want)
		}
	}
}
