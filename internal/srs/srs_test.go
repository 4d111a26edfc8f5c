package srs

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// clock returns a Rewriter clock set at t.
func clock(t *time.Time) func() time.Time { return func() time.Time { return *t } }

func newRewriter(t *testing.T, now *time.Time, secrets ...string) *Rewriter {
	t.Helper()
	var s [][]byte
	for _, x := range secrets {
		s = append(s, []byte(x))
	}
	r, err := New(s, Options{MaxAge: 21 * day, Now: clock(now)})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestForwardReverse(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	r := newRewriter(t, &now, "s3cret")
	got, err := r.Forward("Alice@Orig.example", "fwd.example")
	if err != nil {
		t.Fatal(err)
	}
	// The day number modulo 1024 in base32, and the hash computed here
	// from the specification: base64url of HMAC-SHA1 over the lower-cased
	// timestamp, host and user.
	dn := int(now.Unix()/86400) % 1024
	stamp := string([]byte{base32Chars[dn>>5], base32Chars[dn&31]})
	m := hmac.New(sha1.New, []byte("s3cret"))
	m.Write([]byte(strings.ToLower(stamp + "Orig.example" + "Alice")))
	hash := base64.URLEncoding.EncodeToString(m.Sum(nil))[:4]
	if want := "SRS0=" + hash + "=" + stamp + "=Orig.example=Alice@fwd.example"; got != want {
		t.Fatalf("Forward = %q, want %q", got, want)
	}
	back, err := r.Reverse(got)
	if err != nil || back != "Alice@Orig.example" {
		t.Fatalf("Reverse(%q) = %q, %v", got, back, err)
	}
	// Case changed on the way (some servers lower-case local parts).
	if back, err := r.Reverse(strings.ToLower(got)); err != nil || back != "alice@orig.example" {
		t.Errorf("lower-cased: %q, %v", back, err)
	}

	// A second forwarder: SRS1 keeps the first forwarder's SRS0 address
	// and reverses to it; a third keeps the first forwarder too.
	r2 := newRewriter(t, &now, "other")
	srs1, err := r2.Forward(got, "second.example")
	if err != nil || !strings.HasPrefix(srs1, "SRS1=") || !strings.HasSuffix(srs1, "=fwd.example=="+got[5:len(got)-len("@fwd.example")]+"@second.example") {
		t.Fatalf("SRS1: %q, %v", srs1, err)
	}
	if back, err := r2.Reverse(srs1); err != nil || back != got {
		t.Errorf("Reverse(%q) = %q, %v; want %q", srs1, back, err, got)
	}
	srs1b, err := newRewriter(t, &now, "third").Forward(srs1, "third.example")
	if err != nil || !strings.Contains(srs1b, "=fwd.example==") || !strings.HasSuffix(srs1b, "@third.example") {
		t.Errorf("SRS1 of SRS1: %q, %v", srs1b, err)
	}

	// Expiry: valid for 21 days, not 22; a stamp from the future is old.
	for _, c := range []struct {
		after time.Duration
		err   error
	}{
		{21 * day, nil},
		{22 * day, ErrExpired},
		{-2 * day, ErrExpired},
		{1024*day + time.Hour, nil}, // the stamp wrapped: as old as 0 days (as libsrs2)
	} {
		later := now.Add(c.after)
		_, err := newRewriter(t, &later, "s3cret").Reverse(got)
		if !errors.Is(err, c.err) {
			t.Errorf("after %v: %v, want %v", c.after, err, c.err)
		}
	}
}

func TestReverseRefuses(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	r := newRewriter(t, &now, "new", "old")
	old := newRewriter(t, &now, "old")
	good, _ := old.Forward("alice@orig.example", "fwd.example")
	work, _ := old.Forward("alice@work.test", "fwd.example")
	// Verified with the second secret (rotation).
	if back, err := r.Reverse(good); err != nil || back != "alice@orig.example" {
		t.Errorf("old secret: %q, %v", back, err)
	}
	// The standard base64 alphabet verifies as base64url.
	std := strings.NewReplacer("-", "+", "_", "/").Replace(good[:9]) + good[9:]
	if _, err := r.Reverse(std); err != nil {
		t.Errorf("standard alphabet %q: %v", std, err)
	}
	for _, c := range []struct {
		addr string
		err  error
	}{
		{"alice@fwd.example", ErrNotSRS},
		{"SRS0@fwd.example", ErrNotSRS},
		{"SRS2=x=y@fwd.example", ErrNotSRS},
		{"SRS0=AAAA=" + good[10:], ErrBadHash},                         // forged hash
		{strings.Replace(good, "=alice@", "=mallory@", 1), ErrBadHash}, // altered user
		{strings.Replace(good, "=orig.example=", "=evil.example=", 1), ErrBadHash},
		{"SRS0=ab=" + good[10:], ErrBadHash}, // too short a hash
		{"SRS0=abcd=J@fwd.example", ErrMalformed},
		{"SRS0=abcd=!!=h=u@fwd.example", ErrMalformed},
		{"SRS0=abcd=AA==u@fwd.example", ErrMalformed},
		{"SRS1=abcd=fwd.example@x", ErrMalformed},
		{"SRS1=abcd=h==SRS0junk@x", ErrBadHash},
		// The hash folds ASCII case only (as libsrs2's tolower in the C
		// locale): strings.ToLower made work.test's hash good for
		// wor\u212A.test, a Kelvin sign (addrkey, issue 12 §8).
		{strings.Replace(work, "=work.test=", "=wor\u212A.test=", 1), ErrBadHash},
	} {
		if _, err := r.Reverse(c.addr); !errors.Is(err, c.err) {
			t.Errorf("Reverse(%q): %v, want %v", c.addr, err, c.err)
		}
	}
	if _, err := r.Forward("no-domain", "fwd.example"); err == nil {
		t.Error("Forward without a domain: no error")
	}
	if _, err := r.Forward(strings.Repeat("x", 40)+"@orig.example", "fwd.example"); err == nil {
		t.Error("Forward past 64 octets: no error")
	}
	if _, err := New(nil, Options{}); err == nil {
		t.Error("New without secrets: no error")
	}
	// No default age here (Postern's configuration resolves
	// srs.max_age_days): 0 is refused.
	if _, err := New([][]byte{[]byte("x")}, Options{}); err == nil {
		t.Error("New without MaxAge: no error")
	}
	if _, err := New([][]byte{[]byte("x")}, Options{MaxAge: 2000 * day}); err == nil {
		t.Error("New with 2000 days: no error")
	}
}

// TestMailSRS: addresses made here reverse with Mail::SRS (Shevek's
// reference implementation, Debian's libmail-srs-perl), and its
// addresses reverse here, with the same secret: a bounce through either
// reaches the original sender.
func TestMailSRS(t *testing.T) {
	if _, err := exec.Command("perl", "-MMail::SRS", "-e", "1").CombinedOutput(); err != nil {
		if os.Getenv("POSTERN_INTEGRATION") != "" {
			t.Fatalf("Mail::SRS is required (scripts/test installs libmail-srs-perl): %v", err)
		}
		t.Skip("Mail::SRS not installed")
	}
	perl := func(expr string, arg string) string {
		t.Helper()
		out, err := exec.Command("perl", "-MMail::SRS", "-e",
			`my $s = Mail::SRS->new(Secret => "s3cret", MaxAge => 21, HashLength => 4); my $r = `+expr+`; die "failed\n" unless defined $r; print $r;`,
			arg).CombinedOutput()
		if err != nil {
			t.Fatalf("perl %s %q: %v: %s", expr, arg, err, out)
		}
		return string(out)
	}
	now := time.Now()
	r := newRewriter(t, &now, "s3cret")
	ours, _ := r.Forward("Alice@Orig.example", "fwd.example")
	if got := perl(`$s->reverse($ARGV[0])`, ours); got != "Alice@Orig.example" {
		t.Errorf("Mail::SRS reverse of %q: %q", ours, got)
	}
	theirs := perl(`$s->forward($ARGV[0], "fwd.example")`, "Alice@Orig.example")
	if !regexp.MustCompile(`^SRS0=[^=]{4}=[A-Z2-7]{2}=Orig\.example=Alice@fwd\.example$`).MatchString(theirs) {
		t.Fatalf("Mail::SRS forward: %q", theirs)
	}
	if back, err := r.Reverse(theirs); err != nil || back != "Alice@Orig.example" {
		t.Errorf("Reverse of Mail::SRS's %q: %q, %v", theirs, back, err)
	}
	// SRS1 both ways.
	theirs1 := perl(`$s->forward($ARGV[0], "second.example")`, ours)
	if back, err := r.Reverse(theirs1); err != nil || back != ours {
		t.Errorf("Reverse of Mail::SRS's SRS1 %q: %q, %v; want %q", theirs1, back, err, ours)
	}
	ours1, _ := r.Forward(theirs, "second.example")
	if got := perl(`$s->reverse($ARGV[0])`, ours1); got != theirs {
		t.Errorf("Mail::SRS reverse of our SRS1 %q: %q, want %q", ours1, got, theirs)
	}
}

// FuzzReverse: no panic; whatever verifies was made with the secret,
// and Forward's output always reverses to its input.
func FuzzReverse(f *testing.F) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	r, _ := New([][]byte{[]byte("k")}, Options{MaxAge: 21 * day, Now: func() time.Time { return now }})
	good, _ := r.Forward("a@b.example", "f.example")
	f.Add(good, "a@b.example")
	f.Add("SRS1=abcd=h==x=y=z=w@f", "SRS0=x@y")
	f.Add("srs0+====@", "=@=")
	f.Fuzz(func(t *testing.T, addr, sender string) {
		if back, err := r.Reverse(addr); err == nil {
			if back == "" || !strings.Contains(back, "@") {
				t.Fatalf("Reverse(%q) = %q", addr, back)
			}
		}
		fw, err := r.Forward(sender, "f.example")
		if err != nil {
			return
		}
		back, err := r.Reverse(fw)
		if err != nil {
			t.Fatalf("Forward(%q) = %q does not reverse: %v", sender, fw, err)
		}
		if !IsSRS(sender) && !strings.EqualFold(back, sender) {
			t.Fatalf("Forward(%q) = %q reverses to %q", sender, fw, back)
		}
	})
}
