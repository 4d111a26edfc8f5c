package pkcs11

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxURILength is the longest PKCS#11 URI ParseURI accepts.
const MaxURILength = 4096

// scheme is the URI scheme, compared without case (RFC 3986 §3.1).
const scheme = "pkcs11:"

// IsURI reports whether s is meant as a PKCS#11 URI (starts with
// "pkcs11:", any case) rather than a file name.
func IsURI(s string) bool {
	return len(s) >= len(scheme) && strings.EqualFold(s[:len(scheme)], scheme)
}

// URI is a parsed PKCS#11 URI (RFC 7512) naming one private key: the
// token that holds it and the object. Only the attributes Postern can
// act on are accepted; ParseURI refuses the others rather than ignore
// them, so that a typing mistake never selects another key.
type URI struct {
	// Token is the token label (token=), "" when the token is chosen by
	// Serial or Slot.
	Token string
	// Serial is the token serial number (serial=).
	Serial string
	// Slot is the slot ID (slot-id=), -1 when not given.
	Slot int
	// Object is the key's label, CKA_LABEL (object=).
	Object string
	// ID is the key's CKA_ID (id=), raw bytes.
	ID []byte
	// PINSource is the file the PIN is read from (pin-source=, as a
	// file: URI or an absolute path), "" to use the configured PIN file.
	PINSource string
	// ModulePath is the PKCS#11 module to load (module-path=), "" to use
	// the configured module.
	ModulePath string
}

// ParseURI parses a PKCS#11 URI (RFC 7512 §2.3) that names a private
// key: "pkcs11:" then path attributes separated by ";" and, after "?",
// query attributes separated by "&", each name=value with values
// percent-encoded where the grammar asks. Accepted path attributes:
// token, serial and slot-id (exactly one: the token), object and id
// (at least one: the key), type (only "private"). Accepted query
// attributes: pin-source (a file: URI or an absolute path) and
// module-path (absolute). pin-value is refused: a PIN in the URI would
// sit in the configuration file. Other attributes, repeated
// attributes, bad percent-encoding and characters the grammar does not
// allow are errors that say what to write instead.
func ParseURI(s string) (*URI, error) {
	if len(s) > MaxURILength {
		return nil, fmt.Errorf("pkcs11: URI longer than %d characters", MaxURILength)
	}
	if !IsURI(s) {
		return nil, errors.New(`pkcs11: not a PKCS#11 URI (it must start with "pkcs11:")`)
	}
	rest := s[len(scheme):]
	path, query, hasQuery := strings.Cut(rest, "?")
	u := &URI{Slot: -1}
	seen := map[string]bool{}
	if path != "" {
		for attr := range strings.SplitSeq(path, ";") {
			if err := u.pathAttr(attr, seen); err != nil {
				return nil, err
			}
		}
	}
	if hasQuery && query != "" {
		for attr := range strings.SplitSeq(query, "&") {
			if err := u.queryAttr(attr, seen); err != nil {
				return nil, err
			}
		}
	}
	var sel []string
	if u.Token != "" {
		sel = append(sel, "token")
	}
	if u.Serial != "" {
		sel = append(sel, "serial")
	}
	if u.Slot >= 0 {
		sel = append(sel, "slot-id")
	}
	switch {
	case len(sel) == 0:
		return nil, errors.New("pkcs11: URI names no token: add token=LABEL (pkcs11-tool -L or softhsm2-util --show-slots list the tokens)")
	case len(sel) > 1:
		return nil, fmt.Errorf("pkcs11: URI names the token by %s: keep one of them (token= is the usual)", strings.Join(sel, " and "))
	}
	if u.Object == "" && len(u.ID) == 0 {
		return nil, errors.New("pkcs11: URI names no key: add object=LABEL or id=%XX... (pkcs11-tool --list-objects --type privkey shows them)")
	}
	return u, nil
}

// pathAttr parses one path attribute (RFC 7512 §2.3 pk11-path-attr).
func (u *URI) pathAttr(attr string, seen map[string]bool) error {
	name, raw, ok := strings.Cut(attr, "=")
	if !ok {
		return fmt.Errorf("pkcs11: URI path attribute %q has no '=' (write name=value, separated by ';')", attr)
	}
	if seen[name] {
		return fmt.Errorf("pkcs11: URI attribute %s given twice (RFC 7512 §2.3 allows it once)", name)
	}
	seen[name] = true
	v, err := unescape(raw, false)
	if err != nil {
		return fmt.Errorf("pkcs11: URI attribute %s: %w", name, err)
	}
	switch name {
	case "token":
		u.Token, err = text(name, v)
	case "serial":
		u.Serial, err = text(name, v)
	case "object":
		u.Object, err = text(name, v)
	case "id":
		if len(v) == 0 {
			err = errors.New("pkcs11: URI attribute id is empty")
		}
		u.ID = []byte(v)
	case "slot-id":
		var n uint64
		n, err = strconv.ParseUint(v, 10, 32)
		if err != nil {
			err = fmt.Errorf("pkcs11: URI attribute slot-id %q is not a decimal slot number", v)
		}
		u.Slot = int(n)
	case "type":
		if v != "private" {
			err = fmt.Errorf("pkcs11: URI attribute type=%s: the key must be the private key: type=private, or leave type out", v)
		}
	case "manufacturer", "model", "library-manufacturer", "library-description", "library-version",
		"slot-description", "slot-manufacturer":
		err = fmt.Errorf("pkcs11: URI attribute %s is not used by Postern: select the token with token=, serial= or slot-id= only", name)
	default:
		err = fmt.Errorf("pkcs11: unknown URI attribute %q (Postern uses token, serial, slot-id, object, id and type; query: pin-source, module-path)", name)
	}
	return err
}

// queryAttr parses one query attribute (RFC 7512 §2.3 pk11-query-attr).
func (u *URI) queryAttr(attr string, seen map[string]bool) error {
	name, raw, ok := strings.Cut(attr, "=")
	if !ok {
		return fmt.Errorf("pkcs11: URI query attribute %q has no '=' (write name=value, separated by '&')", attr)
	}
	if seen["?"+name] {
		return fmt.Errorf("pkcs11: URI attribute %s given twice", name)
	}
	seen["?"+name] = true
	v, err := unescape(raw, true)
	if err != nil {
		return fmt.Errorf("pkcs11: URI attribute %s: %w", name, err)
	}
	switch name {
	case "pin-source":
		u.PINSource, err = pinSource(v)
	case "module-path":
		if !filepath.IsAbs(v) {
			return fmt.Errorf("pkcs11: URI attribute module-path %q is not an absolute path", v)
		}
		u.ModulePath, err = text(name, v)
	case "pin-value":
		err = errors.New("pkcs11: URI attribute pin-value would keep the PIN in the configuration file: put the PIN in a file (mode 0600) and name it with pin-source=file:/PATH or [pkcs11] pin_file")
	case "module-name":
		err = errors.New("pkcs11: URI attribute module-name is not supported: name the module by its file with module-path=/PATH or [pkcs11] module")
	default:
		err = fmt.Errorf("pkcs11: unknown URI query attribute %q (Postern uses pin-source and module-path)", name)
	}
	return err
}

// pinSource returns the file a pin-source names: a file: URI (RFC 8089:
// file:/p, file:///p, file://localhost/p) or an absolute path.
func pinSource(v string) (string, error) {
	p := v
	if rest, ok := strings.CutPrefix(v, "file:"); ok {
		p = rest
		if h, ok := strings.CutPrefix(rest, "//"); ok {
			h = strings.TrimPrefix(h, "localhost")
			if !strings.HasPrefix(h, "/") {
				return "", fmt.Errorf("pkcs11: pin-source %q names another host: write file:/PATH", v)
			}
			p = h
		}
	}
	if !filepath.IsAbs(p) {
		return "", fmt.Errorf("pkcs11: pin-source %q is not a file: URI or an absolute path (commands and dialogs are not supported)", v)
	}
	return text("pin-source", p)
}

// text checks that an attribute value is UTF-8 text without control
// characters (labels are UTF-8, PKCS #11 v2.40 §4.4).
func text(name, v string) (string, error) {
	if !utf8.ValidString(v) {
		return "", fmt.Errorf("pkcs11: URI attribute %s is not UTF-8", name)
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return "", fmt.Errorf("pkcs11: URI attribute %s holds a control character", name)
		}
	}
	return v, nil
}

// unescape decodes the percent-encoding of an attribute value, allowing
// unencoded only the characters RFC 7512 §2.3 allows: unreserved ones,
// pk11-res-avail, and "&" in the path or "/", "?" and "|" in the query.
func unescape(s string, query bool) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%':
			if i+2 >= len(s) || unhex(s[i+1]) < 0 || unhex(s[i+2]) < 0 {
				return "", fmt.Errorf("bad percent-encoding at %q", s[i:min(i+3, len(s))])
			}
			b.WriteByte(byte(unhex(s[i+1])<<4 | unhex(s[i+2])))
			i += 2
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			strings.IndexByte("-._~:[]@!$'()*+,=", c) >= 0,
			!query && c == '&', query && strings.IndexByte("/?|", c) >= 0:
			b.WriteByte(c)
		default:
			return "", fmt.Errorf("character %q must be percent-encoded (%%%02X)", rune(c), c)
		}
	}
	return b.String(), nil
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// String returns the URI's path part in a canonical form, without the
// query (no PIN file, no module): "pkcs11:token=T;object=tlskey", for
// logs and metric labels.
func (u *URI) String() string {
	var parts []string
	switch {
	case u.Token != "":
		parts = append(parts, "token="+escape(u.Token))
	case u.Serial != "":
		parts = append(parts, "serial="+escape(u.Serial))
	case u.Slot >= 0:
		parts = append(parts, "slot-id="+strconv.Itoa(u.Slot))
	}
	if u.Object != "" {
		parts = append(parts, "object="+escape(u.Object))
	}
	if len(u.ID) > 0 {
		var b strings.Builder
		for _, c := range u.ID {
			fmt.Fprintf(&b, "%%%02X", c)
		}
		parts = append(parts, "id="+b.String())
	}
	return scheme + strings.Join(parts, ";") + ";type=private"
}

// escape percent-encodes what a path attribute value may not hold as is.
func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~:[]@!$'()*+,=&", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
