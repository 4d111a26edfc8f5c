//go:build cgo

package pkcs11

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThalesGroup/crypto11"
	p11 "github.com/miekg/pkcs11"
)

// Supported reports whether this build can use keys in PKCS#11 tokens:
// true, it was built with cgo.
const Supported = true

// Tokens opens PKCS#11 tokens and finds keys in them. A token, once
// opened (module loaded, user logged in), stays open until Close, and
// every key of it shares its sessions; a token whose keys failed since
// it was opened is closed and opened again at the next Key, which is
// how `postern reload` recovers a token that came back. It is safe for
// concurrent use.
type Tokens struct {
	opts Options

	mu   sync.Mutex
	open map[tokenRef]*token
}

// tokenRef is what selects a token: its module and its label, serial
// or slot.
type tokenRef struct {
	module, label, serial string
	slot                  int
}

// token is an open token.
type token struct {
	ctx    *crypto11.Context
	ref    tokenRef
	pin    [32]byte // SHA-256 of the PIN it was opened with
	desc   string
	slots  chan struct{}
	broken atomic.Bool // a key operation failed since it was opened
	closed atomic.Bool // closed: its keys find themselves again
}

// New returns Tokens that open tokens as opts says. Nothing is opened
// before the first Key.
func New(opts Options) *Tokens {
	opts.defaults()
	return &Tokens{opts: opts, open: map[tokenRef]*token{}}
}

// Key returns the private key uri names, opening its token first when
// needed (or again, when its keys failed since it was opened). Errors
// are *Error values saying what to fix.
func (t *Tokens) Key(uri string) (*Key, error) {
	u, err := ParseURI(uri)
	if err != nil {
		return nil, &Error{Kind: KindConfig, Msg: "bad URI", Err: err,
			Fix: "correct the URI (RFC 7512), for example pkcs11:token=LABEL;object=KEYLABEL;type=private"}
	}
	name := u.String()
	module := u.ModulePath
	if module == "" {
		module = t.opts.Module
	}
	if module == "" {
		return nil, &Error{Kind: KindConfig, URI: name, Msg: "no PKCS#11 module configured",
			Fix: `set [pkcs11] module to the token's library (for SoftHSM2: "/usr/lib/softhsm/libsofthsm2.so"), or add module-path=/PATH to the URI`}
	}
	pinFile := u.PINSource
	if pinFile == "" {
		pinFile = t.opts.PINFile
	}
	if pinFile == "" {
		return nil, &Error{Kind: KindConfig, URI: name, Msg: "no PIN file configured",
			Fix: "put the user PIN in a file (first line, mode 0600, readable by the user Postern runs as) and set [pkcs11] pin_file, or add pin-source=file:/PATH to the URI"}
	}
	pin, err := t.opts.ReadSecret(pinFile)
	if err != nil {
		return nil, &Error{Kind: KindPIN, URI: name, Msg: "cannot read the PIN file " + pinFile, Err: err,
			Fix: "create it with the PIN on its first line, readable by the user Postern runs as (mode 0600)"}
	}
	if pin == "" {
		return nil, &Error{Kind: KindPIN, URI: name, Msg: "the PIN file " + pinFile + " is empty", Fix: "write the user PIN on its first line"}
	}
	ref := tokenRef{module: module, label: u.Token, serial: u.Serial, slot: u.Slot}
	find := func() (*binding, KeyInfo, error) {
		t.mu.Lock()
		defer t.mu.Unlock()
		tok, err := t.token(ref, pin, pinFile, name)
		if err != nil {
			return nil, KeyInfo{}, err
		}
		signer, info, err := t.find(tok, u, name)
		if err != nil {
			return nil, KeyInfo{}, err
		}
		return &binding{signer: signer, slots: tok.slots, stale: tok.closed.Load, failed: func() { tok.broken.Store(true) }}, info, nil
	}
	b, info, err := find()
	if err != nil {
		return nil, err
	}
	refind := func() (*binding, error) {
		b, _, err := find()
		return b, err
	}
	return newKey(b, keyOptions{info: info, refind: refind, opts: t.opts}), nil
}

// token returns the open token ref names, opening it when needed; t.mu
// held.
func (t *Tokens) token(ref tokenRef, pin, pinFile, name string) (*token, error) {
	sum := sha256.Sum256([]byte(pin))
	if tok := t.open[ref]; tok != nil && !tok.broken.Load() {
		if tok.pin != sum {
			// The token's sessions stay logged in: PKCS#11 has no way
			// to check a new PIN while they are (C_Login answers
			// CKR_USER_ALREADY_LOGGED_IN).
			t.opts.Logger.Warn("PKCS#11 PIN file changed: the token stays logged in; the new PIN is used from the next start (postern check tests it now)",
				"key", name, "pin_file", pinFile)
		}
		return tok, nil
	}
	if tok := t.open[ref]; tok != nil {
		// It failed: close every token of its module, so that the
		// module is finalized and finds its tokens anew.
		t.closeModule(ref.module)
	}
	tok, err := t.openToken(ref, pin, name)
	if err != nil {
		return nil, err
	}
	tok.pin = sum
	t.open[ref] = tok
	return tok, nil
}

// closeModule closes the open tokens of module; t.mu held. A token that
// does not close within the timeout (a hung module) is left behind.
func (t *Tokens) closeModule(module string) {
	for ref, tok := range t.open {
		if ref.module != module {
			continue
		}
		delete(t.open, ref)
		tok.closed.Store(true)
		done := make(chan struct{})
		go func() { tok.ctx.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(t.opts.Timeout):
			t.opts.Logger.Error("PKCS#11 token does not close: left open", "module", module, "token", tok.desc)
		}
	}
}

// openToken loads the module, checks that it has the token and logs in.
func (t *Tokens) openToken(ref tokenRef, pin, name string) (*token, error) {
	if _, err := os.Stat(ref.module); err != nil {
		return nil, &Error{Kind: KindModule, URI: name, Msg: "no PKCS#11 module at " + ref.module, Err: err,
			Fix: "install the token's PKCS#11 library (for SoftHSM2: apt-get install softhsm2) or correct [pkcs11] module / module-path"}
	}
	infos, err := moduleTokens(ref.module)
	if err != nil {
		return nil, &Error{Kind: KindModule, URI: name, Msg: "the PKCS#11 module " + ref.module + " does not load", Err: err,
			Fix: "check that it is a PKCS#11 library for this machine and that what it needs is there (ldd " + ref.module + "; for SoftHSM2, SOFTHSM2_CONF and its tokendir)"}
	}
	var found *tokenInfo
	for i, in := range infos {
		if ref.label != "" && in.Label == ref.label || ref.serial != "" && in.Serial == ref.serial || ref.slot >= 0 && in.Slot == uint(ref.slot) {
			found = &infos[i]
			break
		}
	}
	if found == nil {
		have := "no initialized token"
		if len(infos) > 0 {
			var l []string
			for _, in := range infos {
				l = append(l, in.String())
			}
			have = "these tokens: " + strings.Join(l, "; ")
		}
		return nil, &Error{Kind: KindToken, URI: name, Msg: fmt.Sprintf("no token %s on module %s, which has %s", ref.selector(), ref.module, have),
			Fix: "correct token= (or serial=, slot-id=) in the URI, or initialize the token (softhsm2-util --init-token --free --label LABEL)"}
	}
	cfg := &crypto11.Config{Path: ref.module, Pin: pin, MaxSessions: t.opts.MaxInFlight + 1, PoolWaitTimeout: t.opts.Timeout}
	switch {
	case ref.label != "":
		cfg.TokenLabel = ref.label
	case ref.serial != "":
		cfg.TokenSerial = ref.serial
	default:
		slot := ref.slot
		cfg.SlotNumber = &slot
	}
	ctx, err := crypto11.Configure(cfg)
	if err != nil {
		var pe p11.Error
		if errors.As(err, &pe) {
			switch pe {
			case p11.CKR_PIN_INCORRECT, p11.CKR_PIN_INVALID, p11.CKR_PIN_LEN_RANGE:
				return nil, &Error{Kind: KindPIN, URI: name, Msg: "the token " + found.String() + " refused the PIN", Err: err,
					Fix: "put the token's user PIN on the first line of the PIN file ([pkcs11] pin_file or pin-source); wrong tries may lock the PIN"}
			case p11.CKR_PIN_LOCKED, p11.CKR_PIN_EXPIRED:
				return nil, &Error{Kind: KindPIN, URI: name, Msg: "the token " + found.String() + " has locked or expired the user PIN", Err: err,
					Fix: "unlock or reset it with the security officer PIN (pkcs11-tool --login --login-type so --init-pin), then correct the PIN file"}
			}
		}
		return nil, &Error{Kind: KindToken, URI: name, Msg: "cannot open the token " + found.String(), Err: err,
			Fix: "check the token with pkcs11-tool --module " + ref.module + " -L"}
	}
	return &token{ctx: ctx, ref: ref, desc: found.String(), slots: make(chan struct{}, t.opts.MaxInFlight)}, nil
}

func (r tokenRef) selector() string {
	switch {
	case r.label != "":
		return fmt.Sprintf("labelled %q", r.label)
	case r.serial != "":
		return fmt.Sprintf("with serial %q", r.serial)
	}
	return fmt.Sprintf("in slot %d", r.slot)
}

// find finds the key pair u names in tok; t.mu held.
func (t *Tokens) find(tok *token, u *URI, name string) (crypto.Signer, KeyInfo, error) {
	var label []byte
	if u.Object != "" {
		label = []byte(u.Object)
	}
	pairs, err := tok.ctx.FindKeyPairs(u.ID, label)
	if err != nil {
		tok.broken.Store(true)
		return nil, KeyInfo{}, &Error{Kind: KindToken, URI: name, Msg: "the token " + tok.desc + " fails", Err: err,
			Fix: "check the token (pkcs11-tool --module " + tok.ref.module + " -L); postern reload opens it again"}
	}
	switch {
	case len(pairs) > 1:
		return nil, KeyInfo{}, &Error{Kind: KindKey, URI: name, Msg: fmt.Sprintf("%d keys in token %s match", len(pairs), tok.desc),
			Fix: "add id=%XX... to the URI to choose one (pkcs11-tool --list-objects --type privkey shows the ids)"}
	case len(pairs) == 0:
		return nil, KeyInfo{}, t.notFound(tok, u, name, label)
	}
	s := pairs[0]
	info := KeyInfo{URI: name, Module: tok.ref.module, Token: tok.desc, Label: u.Object, ID: hex.EncodeToString(u.ID), Algorithm: algorithm(s.Public())}
	if attrs, err := tok.ctx.GetAttributes(s, []crypto11.AttributeType{crypto11.CkaLabel, crypto11.CkaId}); err == nil {
		if a := attrs[crypto11.CkaLabel]; a != nil {
			info.Label = string(a.Value)
		}
		if a := attrs[crypto11.CkaId]; a != nil {
			info.ID = hex.EncodeToString(a.Value)
		}
	}
	if info.Algorithm == "" {
		return nil, KeyInfo{}, &Error{Kind: KindKey, URI: name, Msg: fmt.Sprintf("the key is of type %T, neither RSA nor ECDSA", s.Public()),
			Fix: "use an RSA (2048 bits or more) or ECDSA (P-256, P-384) key"}
	}
	return s, info, nil
}

// notFound explains a key that is not in the token: a private key
// without its public key, or what keys the token has.
func (t *Tokens) notFound(tok *token, u *URI, name string, label []byte) error {
	if privs, err := tok.ctx.FindPrivateKeys(u.ID, label); err == nil && len(privs) > 0 {
		return &Error{Kind: KindKey, URI: name, Msg: "the token " + tok.desc + " holds the private key but no public key object with the same id",
			Fix: "import the public key with the same id and label (pkcs11-tool --write-object pub.der --type pubkey --id ID --label LABEL)"}
	}
	var have []string
	if pairs, err := tok.ctx.FindAllKeyPairs(); err == nil {
		for _, p := range pairs {
			attrs, err := tok.ctx.GetAttributes(p, []crypto11.AttributeType{crypto11.CkaLabel, crypto11.CkaId})
			if err != nil || attrs[crypto11.CkaLabel] == nil || attrs[crypto11.CkaId] == nil {
				continue
			}
			have = append(have, fmt.Sprintf("object=%s;id=%s (%s)", escape(string(attrs[crypto11.CkaLabel].Value)),
				pctHex(attrs[crypto11.CkaId].Value), algorithm(p.Public())))
		}
	}
	slices.Sort(have)
	holds := "no key pair"
	if len(have) > 0 {
		holds = "the key pairs " + strings.Join(have, ", ")
	}
	return &Error{Kind: KindKey, URI: name, Msg: "no such key in token " + tok.desc + ", which holds " + holds,
		Fix: "correct object= or id= in the URI, or create the key in the token (pkcs11-tool --keypairgen --key-type EC:prime256v1 --label LABEL --id ID --login)"}
}

func pctHex(b []byte) string {
	var s strings.Builder
	for _, c := range b {
		fmt.Fprintf(&s, "%%%02X", c)
	}
	return s.String()
}

// algorithm names a public key's algorithm and size, "" for another type.
func algorithm(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d", k.N.BitLen())
	}
	return ""
}

// Close closes every open token. Keys of a closed token fail.
func (t *Tokens) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	for module := range t.modules() {
		t.closeModule(module)
	}
	return nil
}

func (t *Tokens) modules() map[string]bool {
	m := map[string]bool{}
	for ref := range t.open {
		m[ref.module] = true
	}
	return m
}

// tokenInfo describes a token of a module.
type tokenInfo struct {
	Slot                               uint
	Label, Manufacturer, Model, Serial string
}

// String returns `"LABEL" (MANUFACTURER MODEL, serial S, slot N)`.
func (i tokenInfo) String() string {
	return fmt.Sprintf("%q (%s %s, serial %s, slot %d)", i.Label, i.Manufacturer, i.Model, i.Serial, i.Slot)
}

// moduleTokens lists the initialized tokens of module. It initializes
// the module unless it already is (crypto11 has it open), and then
// finalizes it again, so that crypto11 can initialize it; t.mu held.
func moduleTokens(module string) ([]tokenInfo, error) {
	ctx := p11.New(module)
	if ctx == nil {
		return nil, errors.New("not a PKCS#11 library, or a library it needs is missing")
	}
	defer ctx.Destroy()
	err := ctx.Initialize()
	switch {
	case err == nil:
		defer ctx.Finalize()
	case errors.Is(err, p11.Error(p11.CKR_CRYPTOKI_ALREADY_INITIALIZED)):
	default:
		return nil, fmt.Errorf("C_Initialize: %w", err)
	}
	slots, err := ctx.GetSlotList(true)
	if err != nil {
		return nil, fmt.Errorf("C_GetSlotList: %w", err)
	}
	var out []tokenInfo
	for _, s := range slots {
		ti, err := ctx.GetTokenInfo(s)
		if err != nil || ti.Flags&p11.CKF_TOKEN_INITIALIZED == 0 {
			continue
		}
		out = append(out, tokenInfo{Slot: s, Label: ti.Label, Manufacturer: ti.ManufacturerID, Model: ti.Model, Serial: ti.SerialNumber})
	}
	return out, nil
}
