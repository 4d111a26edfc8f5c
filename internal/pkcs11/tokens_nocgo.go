//go:build !cgo

package pkcs11

// Supported reports whether this build can use keys in PKCS#11 tokens:
// false, it was built without cgo (CGO_ENABLED=0), which crypto11 needs.
const Supported = false

// Tokens stands in for the PKCS#11 token access of a build with cgo:
// every key is an *Error of kind KindUnsupported (or KindConfig for a
// URI that does not parse).
type Tokens struct{}

// New returns Tokens; opts are checked as in a build with cgo, and not
// used.
func New(opts Options) *Tokens {
	opts.defaults()
	return &Tokens{}
}

// Key returns an *Error saying that this build has no PKCS#11 support.
func (t *Tokens) Key(uri string) (*Key, error) {
	u, err := ParseURI(uri)
	if err != nil {
		return nil, &Error{Kind: KindConfig, Msg: "bad URI", Err: err,
			Fix: "correct the URI (RFC 7512), for example pkcs11:token=LABEL;object=KEYLABEL;type=private"}
	}
	return nil, UnsupportedError(u.String())
}

// Close does nothing.
func (t *Tokens) Close() error { return nil }
