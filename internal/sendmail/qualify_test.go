package sendmail

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestQualifyList(t *testing.T) {
	for _, c := range []struct {
		in, want string
		made     []string
	}{
		{"root", "root@d.test", []string{"root@d.test"}},
		{" root (Cron Daemon)", " root@d.test (Cron Daemon)", []string{"root@d.test"}},
		{"(Cron Daemon) root", "(Cron Daemon) root@d.test", []string{"root@d.test"}},
		{"Logwatch", "Logwatch@d.test", []string{"Logwatch@d.test"}},
		{"Admin <root>", "Admin <root@d.test>", []string{"root@d.test"}},
		{`"Admin, Root" < root >`, `"Admin, Root" < root@d.test >`, []string{"root@d.test"}},
		{"a@x.test, www-data, <b.c>", "a@x.test, www-data@d.test, <b.c@d.test>", []string{"www-data@d.test", "b.c@d.test"}},
		{"root,\r\n bob", "root@d.test,\r\n bob@d.test", []string{"root@d.test", "bob@d.test"}},
		{"team: root, alice@x.test;", "team: root@d.test, alice@x.test;", []string{"root@d.test"}},
		{"undisclosed-recipients:;", "undisclosed-recipients:;", nil},
		{"Cron Daemon", "Cron Daemon", nil}, // a display name without an address
		{`"root"`, `"root"`, nil},           // a quoted local part: left alone
		{"<>", "<>", nil},                   // empty
		{"<@a.test:root@b.test>", "<@a.test:root@b.test>", nil},
		{"root@", "root@", nil}, // an "@" already: not a bare name
		{"a..b", "a..b", nil},   // not a dot-atom
		{"root (unclosed", "root@d.test (unclosed", []string{"root@d.test"}},
		{"<root", "<root", nil}, // unclosed angle-addr
		{"", "", nil},
	} {
		got, made := qualifyList([]byte(c.in), "d.test")
		if string(got) != c.want || !slices.Equal(made, c.made) {
			t.Errorf("qualifyList(%q) = %q, %q; want %q, %q", c.in, got, made, c.want, c.made)
		}
	}
}

func TestQualifyHeader(t *testing.T) {
	// What Debian's cron writes (cron 3.0pl1-162, do_command.c), with a
	// logwatch-style From and a folded To.
	hdr := "From: root (Cron Daemon)\r\n" +
		"To: root,\r\n\twww-data\r\n" +
		"Subject: Cron <root@host> echo root\r\n" +
		"X-Cron-Env: <MAILTO=root>\r\n" +
		"Reply-To: Logwatch\r\n" +
		"cc: alice@example.test\r\n" +
		"\r\n" +
		"To: root\r\n" // the body
	got, made, err := QualifyHeader([]byte(hdr), "example.test")
	if err != nil {
		t.Fatal(err)
	}
	want := "From: root@example.test (Cron Daemon)\r\n" +
		"To: root@example.test,\r\n\twww-data@example.test\r\n" +
		"Subject: Cron <root@host> echo root\r\n" +
		"X-Cron-Env: <MAILTO=root>\r\n" +
		"Reply-To: Logwatch@example.test\r\n" +
		"cc: alice@example.test\r\n" +
		"\r\n" +
		"To: root\r\n"
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if w := []string{"root@example.test", "root@example.test", "www-data@example.test", "Logwatch@example.test"}; !slices.Equal(made, w) {
		t.Errorf("made %q, want %q", made, w)
	}
	// A line that would pass 998 characters.
	long := "To: " + strings.Repeat("r,", 490) + "r\r\n\r\n"
	if _, _, err := QualifyHeader([]byte(long), "example.test"); !errors.Is(err, ErrLineTooLong) {
		t.Errorf("long line: %v, want ErrLineTooLong", err)
	}
}

func TestIsBareName(t *testing.T) {
	for s, want := range map[string]bool{
		"root": true, "www-data": true, "a.b": true, "j\u00fcrgen": true,
		"": false, ".a": false, "a.": false, "a..b": false, "a b": false, "a@b": false, "a<b": false,
		strings.Repeat("x", 65): false,
	} {
		if IsBareName(s) != want {
			t.Errorf("IsBareName(%q) = %v", s, !want)
		}
	}
}

// FuzzQualifyHeader: never a panic; only names are added, each once
// where it says; qualifying again adds nothing.
func FuzzQualifyHeader(f *testing.F) {
	for _, s := range []string{
		"From: root (Cron Daemon)\r\nTo: root\r\n\r\n",
		"To: a, (b) c, \"d\" <e>, g: h, i@j;\r\n\r\nbody",
		"Cc: ((nested) comment) x\r\n\tcontinued\r\n",
		"Bcc: \"unclosed\r\n",
		"To: <\r\n",
		"To:\\(\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, hdr []byte) {
		out, made, err := QualifyHeader(hdr, "d.test")
		if err != nil {
			return
		}
		if len(out) != len(hdr)+len(made)*len("@d.test") {
			t.Fatalf("%q -> %q: %d bytes, want %d", hdr, out, len(out), len(hdr)+len(made)*len("@d.test"))
		}
		for _, m := range made {
			local, ok := strings.CutSuffix(m, "@d.test")
			if !ok || !IsBareName(local) {
				t.Fatalf("made %q", m)
			}
		}
		if !bytes.Equal(bytes.ReplaceAll(out, []byte("@d.test"), nil), bytes.ReplaceAll(hdr, []byte("@d.test"), nil)) {
			t.Fatalf("%q -> %q: more than names added", hdr, out)
		}
		again, more, err := QualifyHeader(out, "d.test")
		if err != nil || len(more) != 0 || !bytes.Equal(again, out) {
			t.Fatalf("%q -> %q -> %q, %q, %v: not idempotent", hdr, out, again, more, err)
		}
	})
}
