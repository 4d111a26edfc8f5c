package sasl

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"testing"
)

// scramExample is one of the RFC example exchanges.
type scramExample struct {
	name, hash, serverNonce string
	messages                []string // C, S, C, S
}

var scramExamples = []scramExample{
	{ // RFC 5802 §5
		name: "RFC 5802 §5", hash: HashSHA1, serverNonce: "3rfcNHYJY1ZVvWVs7j",
		messages: []string{
			"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
			"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
			"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
			"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
		},
	},
	{ // RFC 7677 §3
		name: "RFC 7677 §3", hash: HashSHA256, serverNonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
		messages: []string{
			"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
			"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
			"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
			"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
		},
	},
}

func TestSCRAMRFCExamples(t *testing.T) {
	for _, ex := range scramExamples {
		t.Run(ex.name, func(t *testing.T) {
			s := NewSCRAM(context.Background(), SCRAMOptions{
				Hash: ex.hash, Lookup: rfcSecrets(t), Nonce: func() string { return ex.serverNonce },
			})
			ch, done, err := s.Next([]byte(ex.messages[0]))
			if err != nil || done || string(ch) != ex.messages[1] {
				t.Fatalf("server-first %q done=%v err=%v", ch, done, err)
			}
			ch, done, err = s.Next([]byte(ex.messages[2]))
			if err != nil || done || string(ch) != ex.messages[3] {
				t.Fatalf("server-final %q done=%v err=%v", ch, done, err)
			}
			if s.Identity() != "" {
				t.Error("identity before the end")
			}
			ch, done, err = s.Next([]byte{})
			if err != nil || !done || ch != nil || s.Identity() != "user" || s.Username() != "user" {
				t.Fatalf("end: %q done=%v err=%v identity %q", ch, done, err, s.Identity())
			}
		})
	}
	// The same exchange with one proof bit flipped fails with
	// e=invalid-proof in the server-final message.
	ex := scramExamples[1]
	s := NewSCRAM(context.Background(), SCRAMOptions{Hash: ex.hash, Lookup: rfcSecrets(t), Nonce: func() string { return ex.serverNonce }})
	s.Next([]byte(ex.messages[0]))
	bad := strings.Replace(ex.messages[2], "p=dHzb", "p=dHzc", 1)
	ch, done, err := s.Next([]byte(bad))
	if done || string(ch) != "e=invalid-proof" || !errors.Is(err, ErrInvalidCredentials) || s.Identity() != "" {
		t.Errorf("bad proof: %q done=%v err=%v", ch, done, err)
	}
	// No initial response: an empty challenge first.
	s = NewSCRAM(context.Background(), SCRAMOptions{Hash: ex.hash, Lookup: rfcSecrets(t), Nonce: func() string { return ex.serverNonce }})
	if ch, done, err := s.Next(nil); err != nil || done || ch == nil || len(ch) != 0 {
		t.Fatalf("Next(nil): %q %v %v", ch, done, err)
	}
	if ch, _, err := s.Next([]byte(ex.messages[0])); err != nil || string(ch) != ex.messages[1] {
		t.Fatalf("after empty challenge: %q %v", ch, err)
	}
}

// scramClient is an independent client (RFC 5802 §3), so the tests do not
// check xdg-go/scram against itself.
type scramClient struct {
	h              func() hash.Hash
	user, password string
	gs2            string // gs2 header
	cbData         []byte
	cnonce         string

	first, saltedPassword []byte
	authMessage           string
}

func newSCRAMClient(hashName, user, password, gs2 string, cbData []byte) *scramClient {
	h := sha256.New
	if hashName == HashSHA1 {
		h = sha1.New
	}
	return &scramClient{h: h, user: user, password: password, gs2: gs2, cbData: cbData, cnonce: "c1i2e3n4t5n6o7n8c9e0"}
}

func (c *scramClient) clientFirst() []byte {
	c.first = []byte("n=" + strings.NewReplacer("=", "=3D", ",", "=2C").Replace(c.user) + ",r=" + c.cnonce)
	return append([]byte(c.gs2), c.first...)
}

func (c *scramClient) hmac(key []byte, s string) []byte {
	m := hmac.New(c.h, key)
	m.Write([]byte(s))
	return m.Sum(nil)
}

func (c *scramClient) clientFinal(serverFirst []byte) ([]byte, error) {
	var nonce, salt string
	iter := 0
	for _, f := range strings.Split(string(serverFirst), ",") {
		switch {
		case strings.HasPrefix(f, "r="):
			nonce = f[2:]
		case strings.HasPrefix(f, "s="):
			salt = f[2:]
		case strings.HasPrefix(f, "i="):
			iter, _ = strconv.Atoi(f[2:])
		}
	}
	if !strings.HasPrefix(nonce, c.cnonce) || len(nonce) == len(c.cnonce) {
		return nil, fmt.Errorf("bad server nonce %q", nonce)
	}
	rawSalt, err := base64.StdEncoding.DecodeString(salt)
	if err != nil || iter < 4096 {
		return nil, fmt.Errorf("bad salt or iterations in %q", serverFirst)
	}
	c.saltedPassword, err = pbkdf2.Key(c.h, c.password, rawSalt, iter, c.h().Size())
	if err != nil {
		return nil, err
	}
	cbind := base64.StdEncoding.EncodeToString(append([]byte(c.gs2), c.cbData...))
	withoutProof := "c=" + cbind + ",r=" + nonce
	c.authMessage = string(c.first) + "," + string(serverFirst) + "," + withoutProof
	clientKey := c.hmac(c.saltedPassword, "Client Key")
	sh := c.h()
	sh.Write(clientKey)
	sig := c.hmac(sh.Sum(nil), c.authMessage)
	for i := range clientKey {
		clientKey[i] ^= sig[i]
	}
	return []byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(clientKey)), nil
}

func (c *scramClient) checkServerFinal(msg []byte) error {
	want := "v=" + base64.StdEncoding.EncodeToString(c.hmac(c.hmac(c.saltedPassword, "Server Key"), c.authMessage))
	if string(msg) != want {
		return fmt.Errorf("server-final %q, want %q", msg, want)
	}
	return nil
}

// serveSASL runs s over conn with a line protocol: the client sends
// base64 lines; the server answers "+ b64" (challenge), "OK", or
// "NO b64 error" (an error, with its challenge if any).
func serveSASL(conn *tls.Conn, s Server) {
	r := bufio.NewReader(conn)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		resp, err := base64.StdEncoding.DecodeString(strings.TrimSpace(line))
		if err != nil {
			fmt.Fprintf(conn, "NO - %v\n", err)
			return
		}
		ch, done, err := s.Next(resp)
		switch {
		case err != nil:
			fmt.Fprintf(conn, "NO %s %v\n", base64.StdEncoding.EncodeToString(ch), err)
			return
		case done:
			fmt.Fprintf(conn, "OK\n")
			return
		}
		fmt.Fprintf(conn, "+ %s\n", base64.StdEncoding.EncodeToString(ch))
	}
}

// saslCall sends msg on conn and reads the reply.
func saslCall(conn *tls.Conn, r *bufio.Reader, msg []byte) (challenge []byte, ok bool, err error) {
	fmt.Fprintf(conn, "%s\n", base64.StdEncoding.EncodeToString(msg))
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, false, err
	}
	f := strings.SplitN(strings.TrimSpace(line), " ", 3)
	switch f[0] {
	case "+":
		ch, _ := base64.StdEncoding.DecodeString(f[1])
		return ch, false, nil
	case "OK":
		return nil, true, nil
	}
	ch, _ := base64.StdEncoding.DecodeString(f[1])
	return ch, false, errors.New(strings.Join(f[2:], " "))
}

// clientBinding computes the client's view of a channel binding of conn.
func clientBinding(t *testing.T, conn *tls.Conn, typ string) []byte {
	t.Helper()
	cs := conn.ConnectionState()
	switch typ {
	case CBTLSExporter:
		b, err := cs.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
		if err != nil {
			t.Fatal(err)
		}
		return b
	case CBTLSServerEndPoint:
		d := sha256.Sum256(cs.PeerCertificates[0].Raw) // the test CA signs with ECDSA-SHA256
		return d[:]
	}
	return nil
}

// TestSCRAMPlusOverTLS runs SCRAM-SHA-256-PLUS and SCRAM-SHA-1-PLUS over
// real loopback TLS connections, with each binding type, and with a
// binding taken from another TLS connection.
func TestSCRAMPlusOverTLS(t *testing.T) {
	ca := newTestCA()
	srvCert := ca.issue("mx.example.org")
	secrets := newMemSecrets()
	secrets.add(t, "alice@example.org", "alice", "correct horse")

	type tc struct {
		name      string
		hash      string
		version   uint16 // max TLS version
		cbType    string
		otherConn bool // take the client's binding from another connection
		wantOK    bool
		wantFinal string // the server-final message on failure
	}
	for _, c := range []tc{
		{"TLS1.3 exporter", HashSHA256, tls.VersionTLS13, CBTLSExporter, false, true, ""},
		{"TLS1.3 end-point", HashSHA256, tls.VersionTLS13, CBTLSServerEndPoint, false, true, ""},
		{"TLS1.3 exporter SHA-1", HashSHA1, tls.VersionTLS13, CBTLSExporter, false, true, ""},
		{"TLS1.2 end-point", HashSHA256, tls.VersionTLS12, CBTLSServerEndPoint, false, true, ""},
		{"TLS1.2 exporter refused", HashSHA256, tls.VersionTLS12, CBTLSExporter, false, false, ""},
		{"TLS1.3 exporter of another session", HashSHA256, tls.VersionTLS13, CBTLSExporter, true, false, "e=channel-bindings-dont-match"},
		{"TLS1.2 end-point of another certificate", HashSHA256, tls.VersionTLS12, CBTLSServerEndPoint, true, false, "e=channel-bindings-dont-match"},
	} {
		t.Run(c.name, func(t *testing.T) {
			srvConf := &tls.Config{Certificates: []tls.Certificate{srvCert}, MaxVersion: c.version}
			cliConf := &tls.Config{RootCAs: ca.Pool, ServerName: "mx.example.org", MaxVersion: c.version}
			sconn, cconn := tlsPair(t, srvConf, cliConf)
			cs := sconn.ConnectionState()
			s := NewSCRAM(context.Background(), SCRAMOptions{
				Hash: c.hash, Plus: true, PlusOffered: true, Lookup: secrets,
				Bindings: ChannelBindings(&cs, srvCert.Leaf),
			})
			go serveSASL(sconn, s)

			cb := clientBinding(t, cconn, c.cbType)
			if c.otherConn {
				// Another session: a fresh handshake (new exporter) and,
				// for end-point, another certificate from the same CA.
				other := srvCert
				if c.cbType == CBTLSServerEndPoint {
					other = ca.issue("mx.example.org")
				}
				_, oc := tlsPair(t, &tls.Config{Certificates: []tls.Certificate{other}, MaxVersion: c.version}, cliConf)
				cb = clientBinding(t, oc, c.cbType)
			}
			cl := newSCRAMClient(c.hash, "alice@example.org", "correct horse", "p="+c.cbType+",,", cb)
			r := bufio.NewReader(cconn)
			ch, _, err := saslCall(cconn, r, cl.clientFirst())
			if err != nil {
				if c.wantOK || c.wantFinal != "" {
					t.Fatalf("client-first refused: %v", err)
				}
				if !strings.Contains(err.Error(), "unsupported channel binding type") {
					t.Errorf("error %v", err)
				}
				return
			}
			final, err := cl.clientFinal(ch)
			if err != nil {
				t.Fatal(err)
			}
			ch, _, err = saslCall(cconn, r, final)
			if !c.wantOK {
				if err == nil || string(ch) != c.wantFinal || !strings.Contains(err.Error(), "invalid credentials") {
					t.Fatalf("server-final %q err=%v, want %q", ch, err, c.wantFinal)
				}
				return
			}
			if err != nil {
				t.Fatalf("client-final refused: %v", err)
			}
			if err := cl.checkServerFinal(ch); err != nil {
				t.Fatal(err)
			}
			if _, ok, err := saslCall(cconn, r, nil); !ok || err != nil {
				t.Fatalf("end: ok=%v err=%v", ok, err)
			}
			if s.Identity() != "alice" {
				t.Errorf("identity %q", s.Identity())
			}
		})
	}
}

// TestSCRAMFlags checks RFC 5802 §6's channel-binding flag rules, the
// authzid, unknown users and temporary failures.
func TestSCRAMFlags(t *testing.T) {
	secrets := newMemSecrets()
	secrets.add(t, "alice@example.org", "alice", "correct horse")
	bindings := map[string][]byte{CBTLSExporter: []byte("0123456789abcdef0123456789abcdef")}
	run := func(opts SCRAMOptions, user, password, gs2 string, cb []byte) (Server, []byte, error) {
		opts.Lookup, opts.Bindings = secrets, bindings
		if opts.Hash == "" {
			opts.Hash = HashSHA256
		}
		s := NewSCRAM(context.Background(), opts)
		cl := newSCRAMClient(opts.Hash, user, password, gs2, cb)
		ch, done, err := s.Next(cl.clientFirst())
		if err != nil || done {
			return s, ch, err
		}
		final, err := cl.clientFinal(ch)
		if err != nil {
			t.Fatalf("%s %s: %v", user, gs2, err)
		}
		ch, done, err = s.Next(final)
		if err != nil || done {
			return s, ch, err
		}
		if err := cl.checkServerFinal(ch); err != nil {
			t.Fatal(err)
		}
		_, done, err = s.Next([]byte{})
		if !done && err == nil {
			t.Fatal("not done")
		}
		return s, nil, err
	}
	for _, c := range []struct {
		name           string
		opts           SCRAMOptions
		user, pw, gs2  string
		cb             []byte
		want           error  // nil: success
		wantChallenge  string // on failure
		wantIdentity   string
		wantNoPassword bool
	}{
		{"plain n", SCRAMOptions{}, "alice@example.org", "correct horse", "n,,", nil, nil, "", "alice", false},
		{"plain n, -PLUS offered", SCRAMOptions{PlusOffered: true}, "alice@example.org", "correct horse", "n,,", nil, nil, "", "alice", false},
		{"plain y, -PLUS not offered", SCRAMOptions{}, "ALICE@example.org", "correct horse", "y,,", nil, nil, "", "alice", false},
		{"downgrade: y while -PLUS offered", SCRAMOptions{PlusOffered: true}, "alice@example.org", "correct horse", "y,,", nil, ErrInvalidCredentials, "", "", false},
		{"p without -PLUS", SCRAMOptions{PlusOffered: true}, "alice@example.org", "correct horse", "p=tls-exporter,,", bindings[CBTLSExporter], ErrMalformed, "", "", false},
		{"-PLUS with n", SCRAMOptions{Plus: true, PlusOffered: true}, "alice@example.org", "correct horse", "n,,", nil, ErrMalformed, "", "", false},
		{"-PLUS with y", SCRAMOptions{Plus: true, PlusOffered: true}, "alice@example.org", "correct horse", "y,,", nil, ErrMalformed, "", "", false},
		{"-PLUS good", SCRAMOptions{Plus: true, PlusOffered: true}, "alice@example.org", "correct horse", "p=tls-exporter,,", bindings[CBTLSExporter], nil, "", "alice", false},
		{"-PLUS wrong data", SCRAMOptions{Plus: true, PlusOffered: true}, "alice@example.org", "correct horse", "p=tls-exporter,,", []byte("0123456789abcdef0123456789abcdeX"), ErrInvalidCredentials, "e=channel-bindings-dont-match", "", false},
		{"-PLUS tls-unique", SCRAMOptions{Plus: true, PlusOffered: true}, "alice@example.org", "correct horse", "p=tls-unique,,", []byte("x"), ErrInvalidCredentials, "", "", false},
		{"authzid self", SCRAMOptions{}, "alice@example.org", "correct horse", "n,a=alice,", nil, nil, "", "alice", false},
		{"authzid escaped self", SCRAMOptions{}, "alice@example.org", "correct horse", "n,a=alice@example.org,", nil, nil, "", "alice", false},
		{"authzid other", SCRAMOptions{}, "alice@example.org", "correct horse", "n,a=bob,", nil, ErrInvalidCredentials, "e=other-error", "", false},
		{"bad authzid escape", SCRAMOptions{}, "alice@example.org", "correct horse", "n,a=al=ice,", nil, ErrMalformed, "", "", false},
		{"wrong password", SCRAMOptions{}, "alice@example.org", "wrong horse", "n,,", nil, ErrInvalidCredentials, "e=invalid-proof", "", true},
		{"unknown user", SCRAMOptions{}, "mallory@example.org", "x", "n,,", nil, ErrInvalidCredentials, "e=invalid-proof", "", false},
		{"SHA-1", SCRAMOptions{Hash: HashSHA1}, "alice@example.org", "correct horse", "n,,", nil, nil, "", "alice", false},
		{"temporary", SCRAMOptions{}, "tempfail", "x", "n,,", nil, ErrTemporary, "", "", false},
	} {
		s, ch, err := run(c.opts, c.user, c.pw, c.gs2, c.cb)
		if c.want == nil {
			if err != nil || s.Identity() != c.wantIdentity {
				t.Errorf("%s: err=%v identity %q", c.name, err, s.Identity())
			}
			continue
		}
		if !errors.Is(err, c.want) || string(ch) != c.wantChallenge || s.Identity() != "" {
			t.Errorf("%s: err=%v challenge %q identity %q; want %v, %q", c.name, err, ch, s.Identity(), c.want, c.wantChallenge)
		}
		if err != nil && strings.Contains(err.Error(), "horse") {
			t.Errorf("%s: error contains the password: %v", c.name, err)
		}
	}
}

// TestSCRAMUnknownUserSalt: with a MockKey an unknown user always gets the
// same salt, so probing twice does not tell who exists.
func TestSCRAMUnknownUserSalt(t *testing.T) {
	secrets := newMemSecrets()
	first := func(user string, key []byte) string {
		s := NewSCRAM(context.Background(), SCRAMOptions{Hash: HashSHA256, Lookup: secrets, MockKey: key})
		ch, _, err := s.Next([]byte("n,,n=" + user + ",r=abc"))
		if err != nil {
			t.Fatal(err)
		}
		_, rest, _ := strings.Cut(string(ch), ",s=")
		return rest
	}
	key := []byte("mock key")
	if a, b := first("ghost", key), first("ghost", key); a != b || !strings.HasSuffix(a, ",i=4096") {
		t.Errorf("salts %q and %q differ", a, b)
	}
	if a, b := first("ghost", key), first("other", key); a == b {
		t.Errorf("two users share the salt %q", a)
	}
	s := NewSCRAM(context.Background(), SCRAMOptions{Hash: HashSHA256, Lookup: secrets, MockIterations: 10000})
	if ch, _, err := s.Next([]byte("n,,n=ghost,r=abc")); err != nil || !strings.HasSuffix(string(ch), ",i=10000") {
		t.Errorf("MockIterations: %q %v", ch, err)
	}
}

func TestSCRAMMalformed(t *testing.T) {
	secrets := newMemSecrets()
	secrets.add(t, "alice", "alice", "pw")
	for _, m := range []string{
		"", "n", "n,", "x,,n=alice,r=abc", "p=,,n=alice,r=abc", "p=tls exporter,,n=alice,r=abc",
		"n,,n=alice", "n,,r=abc", "n,,m=ext,n=alice,r=abc", "n,b=x,n=alice,r=abc",
		"n,,n=al=ice,r=abc", "n,,n=,r=abc", "n,,n=" + strings.Repeat("a", 256) + ",r=abc",
		"n,,n=a\x00b,r=abc", "n,,n=alice,r=abc\xff",
	} {
		s := NewSCRAM(context.Background(), SCRAMOptions{Hash: HashSHA256, Lookup: secrets})
		if _, done, err := s.Next([]byte(m)); done || !errors.Is(err, ErrMalformed) {
			t.Errorf("client-first %q: done=%v err=%v", m, done, err)
		}
	}
	for _, m := range []string{"", "c=biws", "c=biws,r=abc", "c=!!,r=x,p=abc", "r=x,c=biws,p=abc", "c=biws,r=x,p=!!"} {
		s := NewSCRAM(context.Background(), SCRAMOptions{Hash: HashSHA256, Lookup: secrets})
		if _, _, err := s.Next([]byte("n,,n=alice,r=abc")); err != nil {
			t.Fatal(err)
		}
		if _, done, err := s.Next([]byte(m)); done || err == nil || s.Identity() != "" {
			t.Errorf("client-final %q: done=%v err=%v", m, done, err)
		}
	}
}
