package pkcs11

import (
	"bytes"
	"strings"
	"testing"
)

func TestParseURI(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   string
		want URI
	}{
		{"pkcs11:token=T;object=tlskey;type=private", URI{Token: "T", Object: "tlskey", Slot: -1}},
		{"PKCS11:token=T;object=tlskey", URI{Token: "T", Object: "tlskey", Slot: -1}},
		{"pkcs11:serial=6f806712d4ef84ff;id=%01%a2", URI{Serial: "6f806712d4ef84ff", ID: []byte{1, 0xa2}, Slot: -1}},
		{"pkcs11:slot-id=1424983295;object=k", URI{Slot: 1424983295, Object: "k"}},
		// RFC 7512 §3 example: spaces and a literal '&' in the path.
		{"pkcs11:token=Software%20PKCS%2311%20softtoken;object=my%20key&x;type=private",
			URI{Token: "Software PKCS#11 softtoken", Object: "my key&x", Slot: -1}},
		{"pkcs11:token=T;object=k?pin-source=file:/etc/postern/pin&module-path=/usr/lib/x.so",
			URI{Token: "T", Object: "k", Slot: -1, PINSource: "/etc/postern/pin", ModulePath: "/usr/lib/x.so"}},
		{"pkcs11:token=T;object=k?pin-source=file:///etc/pin", URI{Token: "T", Object: "k", Slot: -1, PINSource: "/etc/pin"}},
		{"pkcs11:token=T;object=k?pin-source=file://localhost/etc/pin", URI{Token: "T", Object: "k", Slot: -1, PINSource: "/etc/pin"}},
		{"pkcs11:token=T;object=k?pin-source=/etc/pin", URI{Token: "T", Object: "k", Slot: -1, PINSource: "/etc/pin"}},
		{"pkcs11:token=a=b;object=k", URI{Token: "a=b", Object: "k", Slot: -1}},
	} {
		u, err := ParseURI(c.in)
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if u.Token != c.want.Token || u.Serial != c.want.Serial || u.Slot != c.want.Slot || u.Object != c.want.Object ||
			!bytes.Equal(u.ID, c.want.ID) || u.PINSource != c.want.PINSource || u.ModulePath != c.want.ModulePath {
			t.Errorf("%s: got %+v, want %+v", c.in, *u, c.want)
		}
		// String is canonical and parses back to the same key.
		again, err := ParseURI(u.String())
		if err != nil || again.Token != u.Token || again.Object != u.Object || !bytes.Equal(again.ID, u.ID) || again.Slot != u.Slot {
			t.Errorf("%s: String %q parses back as %+v, %v", c.in, u.String(), again, err)
		}
	}
}

func TestParseURIRefuses(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want string }{
		{"/etc/postern/key.pem", "must start with"},
		{"pkcs11:", "names no token"},
		{"pkcs11:object=k", "names no token"},
		{"pkcs11:token=T", "names no key"},
		{"pkcs11:token=T;serial=1;object=k", "keep one of them"},
		{"pkcs11:token=T;token=U;object=k", "given twice"},
		{"pkcs11:token=T;object=k;type=public", "type=private"},
		{"pkcs11:token=T;object=k;model=SoftHSM%20v2", "not used by Postern"},
		{"pkcs11:token=T;object=k;x-vendor=1", "unknown URI attribute"},
		{"pkcs11:token=T;object=my key", "must be percent-encoded"},
		{"pkcs11:token=T;object=k%2", "bad percent-encoding"},
		{"pkcs11:token=T;object=k%zz", "bad percent-encoding"},
		{"pkcs11:token=T;object=k%0a", "control character"},
		{"pkcs11:token=T;object=%ff", "not UTF-8"},
		{"pkcs11:token=T;objectk", "has no '='"},
		{"pkcs11:token=T;slot-id=-1;object=k", "not a decimal slot"},
		{"pkcs11:token=T;id=;object=k", "id is empty"},
		{"pkcs11:token=T;object=k?pin-value=1234", "would keep the PIN in the configuration file"},
		{"pkcs11:token=T;object=k?pin-source=pin.txt", "not a file: URI or an absolute path"},
		{"pkcs11:token=T;object=k?pin-source=|/bin/getpin", "commands and dialogs are not supported"},
		{"pkcs11:token=T;object=k?pin-source=/a;b", "must be percent-encoded"},
		{"pkcs11:token=T;object=k?pin-source=file://otherhost/pin", "names another host"},
		{"pkcs11:token=T;object=k?module-name=softhsm2", "module-name is not supported"},
		{"pkcs11:token=T;object=k?module-path=lib.so", "not an absolute path"},
		{"pkcs11:token=T;object=k?foo=bar", "unknown URI query attribute"},
		{"pkcs11:token=T;object=k?pin-source=/a&pin-source=/b", "given twice"},
		{"pkcs11:token=T;object=" + strings.Repeat("a", MaxURILength), "longer than"},
	} {
		_, err := ParseURI(c.in)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want one containing %q", c.in, err, c.want)
		}
	}
}

func TestIsURI(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{
		"pkcs11:token=T": true, "PKCS11:x": true, "pkcs11": false, "/etc/key.pem": false, "key.pem": false, "": false,
	} {
		if IsURI(s) != want {
			t.Errorf("IsURI(%q) = %v", s, !want)
		}
	}
}

// Timeout has no default here (Postern's configuration resolves it, in
// internal/config): as time.NewTicker, New refuses a Timeout that is not
// positive, rather than take 0 for a default.
func TestNewTimeoutRequired(t *testing.T) {
	t.Parallel()
	defer func() {
		if recover() == nil {
			t.Error("New took a Timeout of 0")
		}
	}()
	New(Options{ReadSecret: func(string) (string, error) { return "", nil }})
}
