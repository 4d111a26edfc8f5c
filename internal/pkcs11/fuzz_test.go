package pkcs11

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseURI checks that the PKCS#11 URI parser never panics, that
// what it accepts names one token and one key with text values and
// absolute paths, and that its canonical String parses back to the same
// key.
func FuzzParseURI(f *testing.F) {
	for _, s := range []string{
		"pkcs11:token=T;object=tlskey;type=private",
		"pkcs11:serial=6f80;id=%01%02",
		"pkcs11:slot-id=7;object=a%20b&c?pin-source=file:///etc/pin&module-path=/usr/lib/x.so",
		"pkcs11:token=T;object=k?pin-value=1", "pkcs11:;;", "pkcs11:?&&", "pkcs11:token=%", "pkcs11:id=%00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseURI(s)
		if err != nil {
			return
		}
		n := 0
		if u.Token != "" {
			n++
		}
		if u.Serial != "" {
			n++
		}
		if u.Slot >= 0 {
			n++
		}
		if n != 1 || u.Object == "" && len(u.ID) == 0 {
			t.Fatalf("%q accepted as %+v: want one token and a key", s, u)
		}
		for _, v := range []string{u.Token, u.Serial, u.Object, u.PINSource, u.ModulePath} {
			if !utf8.ValidString(v) || strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
				t.Fatalf("%q accepted with value %q", s, v)
			}
		}
		if u.PINSource != "" && !filepath.IsAbs(u.PINSource) || u.ModulePath != "" && !filepath.IsAbs(u.ModulePath) {
			t.Fatalf("%q accepted with a relative path: %+v", s, u)
		}
		again, err := ParseURI(u.String())
		if err != nil {
			t.Fatalf("%q: String %q does not parse: %v", s, u.String(), err)
		}
		if again.Token != u.Token || again.Serial != u.Serial || again.Slot != u.Slot || again.Object != u.Object || !bytes.Equal(again.ID, u.ID) {
			t.Fatalf("%q: String %q parses as %+v, not %+v", s, u.String(), again, u)
		}
	})
}
