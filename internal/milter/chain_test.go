package milter_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"postern/internal/milter"
	"postern/internal/milter/miltertest"
	"postern/internal/testkit"
)

// memTx is a Transaction in memory.
type memTx struct {
	body      []byte
	newBody   *bytes.Buffer
	discarded int
	envs      []milter.EnvelopeChanges
	refuse    error // ChangeEnvelope's answer
}

func (m *memTx) Body() io.Reader { return bytes.NewReader(m.body) }
func (m *memTx) BodySize() int64 { return int64(len(m.body)) }

func (m *memTx) NewBody() (milter.BodyWriter, error) {
	m.newBody = new(bytes.Buffer)
	return &memBody{tx: m, buf: m.newBody}, nil
}

func (m *memTx) ChangeEnvelope(e milter.EnvelopeChanges) error {
	if m.refuse != nil {
		return m.refuse
	}
	m.envs = append(m.envs, e)
	return nil
}

type memBody struct {
	tx  *memTx
	buf *bytes.Buffer
}

func (b *memBody) Write(p []byte) (int, error) { return b.buf.Write(p) }
func (b *memBody) Commit() error               { b.tx.body = b.buf.Bytes(); return nil }
func (b *memBody) Discard()                    { b.tx.discarded++ }

// recorder is an Observer.
type recorder struct {
	mu       sync.Mutex
	failed   []string
	decided  []string
	failures []*milter.Error
}

func (r *recorder) Failed(err *milter.Error, action milter.DefaultAction) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed = append(r.failed, fmt.Sprintf("%s %s %s %s", err.Milter, err.Stage, err.Kind, action))
	r.failures = append(r.failures, err)
}

func (r *recorder) Decided(name string, stage milter.Stage, a milter.Action, quarantine string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.decided = append(r.decided, fmt.Sprintf("%s %s %s %s", name, stage, a, quarantine))
}

const chainHeader = "Received: from client.example by mx.example.org\r\nSubject: test\r\nFrom: a@example.net\r\n\r\n"

// envelope runs connect to DATA through c and fails the test unless
// every stage goes on.
func envelope(t *testing.T, c *milter.Chain) {
	t.Helper()
	for _, v := range []milter.Verdict{
		c.Connect("[192.0.2.1]", netip.MustParseAddrPort("192.0.2.1:1234"), nil),
		c.Helo("client.example", nil),
		c.Mail("a@example.net", nil, nil),
		c.Rcpt("bob@example.org", nil, nil),
		c.Data(nil),
	} {
		if v.Action != milter.Continue {
			t.Fatalf("verdict %+v", v)
		}
	}
}

func newChain(t *testing.T, o milter.ChainOptions, ms ...milter.Milter) *milter.Chain {
	if o.MaxLine == 0 {
		o.MaxLine, o.MaxSize = 1000, 35<<20
	}
	c := milter.NewChain(context.Background(), ms, o)
	t.Cleanup(c.Close)
	return c
}

// Two milters in order: the second sees the message as the first left
// it, and the first's changes are applied.
func TestChainOrderAndChanges(t *testing.T) {
	first := &miltertest.Server{Handler: func(ev *miltertest.Event) []miltertest.Packet {
		if ev.Code == 'E' {
			return append(append([]miltertest.Packet{
				miltertest.AddHeader("X-First", "yes"),
				miltertest.InsertHeader(0, "X-Top", "top"),
				miltertest.ChangeHeader(1, "Subject", "changed"),
				miltertest.ChangeFrom("<new@example.net>"),
				miltertest.AddRcpt("<carol@example.org>"),
				miltertest.DeleteRcpt("<bob@example.org>"),
			}, miltertest.ReplaceBody([]byte("new body\nsecond line\n"))...), miltertest.Continue)
		}
		return nil
	}}
	first.Start(t)
	second := &miltertest.Server{Handler: func(ev *miltertest.Event) []miltertest.Packet {
		if ev.Code == 'E' {
			return []miltertest.Packet{miltertest.Quarantine("looks odd"), miltertest.Accept}
		}
		return nil
	}}
	second.Start(t)
	rec := &recorder{}
	c := newChain(t, milter.ChainOptions{Observer: rec}, testMilter("first", first), testMilter("second", second))
	envelope(t, c)
	h := milter.ParseHeader([]byte(chainHeader))
	tx := &memTx{body: []byte("old body\r\n")}
	v, err := c.Message(h, tx, nil, nil)
	if err != nil || v.Action != milter.Continue || v.Quarantine != "looks odd" || v.QuarantineBy != "second" {
		t.Fatalf("verdict %+v, %v", v, err)
	}
	want := "X-Top: top\r\nReceived: from client.example by mx.example.org\r\nSubject: changed\r\nFrom: a@example.net\r\nX-First: yes\r\n\r\n"
	if got := string(h.AppendTo(nil)); got != want {
		t.Errorf("header\n%q\nwant\n%q", got, want)
	}
	if string(tx.body) != "new body\r\nsecond line\r\n" {
		t.Errorf("body %q", tx.body)
	}
	if len(tx.envs) != 1 || *tx.envs[0].From != "new@example.net" || !slices.Equal(tx.envs[0].Add, []string{"carol@example.org"}) ||
		!slices.Equal(tx.envs[0].Delete, []string{"bob@example.org"}) {
		t.Errorf("envelope changes %+v", tx.envs)
	}
	var secondSaw []string
	for _, ev := range second.Events() {
		switch ev.Code {
		case 'L':
			secondSaw = append(secondSaw, ev.Args[0]+": "+ev.Args[1])
		case 'B':
			secondSaw = append(secondSaw, "body "+string(ev.Data))
		}
	}
	wantSaw := []string{"X-Top: top", "Subject: changed", "From: a@example.net", "X-First: yes", "body new body\r\nsecond line\r\n"}
	if !slices.Equal(secondSaw, wantSaw) {
		t.Errorf("the second milter saw\n%q\nwant\n%q", secondSaw, wantSaw)
	}
	if !slices.Equal(rec.decided, []string{"second eom continue looks odd", "second eom accept "}) {
		t.Errorf("decisions %q", rec.decided)
	}
	// The message ended with its end: no abort for either.
	c.Abort()
	c.Close()
	first.WaitCodes(t, "Q")
	second.WaitCodes(t, "Q")
	if strings.Contains(first.Codes(), "A") || strings.Contains(second.Codes(), "A") {
		t.Errorf("aborted after the end of message: %q %q", first.Codes(), second.Codes())
	}
}

// The first milter to refuse decides; those after it are not asked.
func TestChainReject(t *testing.T) {
	for _, stage := range []byte("CHMRTLE") {
		t.Run(string(stage), func(t *testing.T) {
			first := &miltertest.Server{Handler: func(ev *miltertest.Event) []miltertest.Packet {
				if ev.Code == stage {
					return []miltertest.Packet{miltertest.ReplyCode("554 5.7.1 Go away")}
				}
				return nil
			}}
			first.Start(t)
			second := &miltertest.Server{}
			second.Start(t)
			c := newChain(t, milter.ChainOptions{}, testMilter("first", first), testMilter("second", second))
			var v milter.Verdict
			steps := []func() milter.Verdict{
				func() milter.Verdict { return c.Connect("h", netip.AddrPort{}, nil) },
				func() milter.Verdict { return c.Helo("h", nil) },
				func() milter.Verdict { return c.Mail("a@example.net", nil, nil) },
				func() milter.Verdict { return c.Rcpt("b@example.org", nil, nil) },
				func() milter.Verdict { return c.Data(nil) },
				func() milter.Verdict {
					v, _ := c.Message(milter.ParseHeader([]byte(chainHeader)), &memTx{}, nil, nil)
					return v
				},
			}
			for _, step := range steps {
				if v = step(); v.Action != milter.Continue {
					break
				}
			}
			if v.Action != milter.Reject || v.Milter != "first" || v.Reply == nil || v.Reply.String() != "554 5.7.1 Go away" {
				t.Fatalf("verdict %+v", v)
			}
			st := string(stage)
			if st == "L" {
				st = "LNBE"
			}
			if got := second.Codes(); strings.ContainsAny(got, st) {
				t.Errorf("the second milter was asked %q after the first refused at %c", got, stage)
			}
		})
	}
}

// Accept ends what that milter is asked (the message, or the
// connection at HELO), not what the others are; an aborted message is
// aborted only for milters that had its MAIL.
func TestChainAccept(t *testing.T) {
	first := &miltertest.Server{Handler: func(ev *miltertest.Event) []miltertest.Packet {
		if ev.Code == 'R' {
			return []miltertest.Packet{miltertest.Accept}
		}
		return nil
	}}
	first.Start(t)
	second := &miltertest.Server{Handler: func(ev *miltertest.Event) []miltertest.Packet {
		if ev.Code == 'H' {
			return []miltertest.Packet{miltertest.Accept}
		}
		return nil
	}}
	second.Start(t)
	c := newChain(t, milter.ChainOptions{}, testMilter("first", first), testMilter("second", second))
	envelope(t, c)
	c.Rcpt("carol@example.org", nil, nil)
	v, err := c.Message(milter.ParseHeader([]byte(chainHeader)), &memTx{body: []byte("x\r\n")}, nil, nil)
	if err != nil || v.Action != milter.Continue {
		t.Fatal(v, err)
	}
	c.Abort() // the end of the transaction
	c.Mail("a@example.net", nil, nil)
	c.Abort()
	first.WaitCodes(t, "MA")
	if got := first.Codes(); got != "CHMRAMA" {
		t.Errorf("first milter's events %q", got)
	}
	if got := second.Codes(); got != "CH" {
		t.Errorf("second milter's events %q", got)
	}
}

// A milter that is down takes its default action: accept goes on
// without it for the session, tempfail refuses each later stage.
func TestChainDefaultAction(t *testing.T) {
	down := miltertest.DownAddress(t) // connection refused
	other := &miltertest.Server{}
	other.Start(t)

	rec := &recorder{}
	m := milter.Milter{Name: "down", Address: down, ConnectTimeout: time.Second, DefaultAction: milter.DefaultAccept}
	c := newChain(t, milter.ChainOptions{Observer: rec}, m, testMilter("other", other))
	envelope(t, c)
	if !slices.Equal(rec.failed, []string{"down negotiate unavailable accept"}) {
		t.Errorf("failures %q", rec.failed)
	}
	if got := other.Codes(); got != "CHMRT" {
		t.Errorf("the other milter got %q", got)
	}

	m.DefaultAction = milter.DefaultTempfail
	c = newChain(t, milter.ChainOptions{}, m, testMilter("other", other))
	v := c.Connect("h", netip.AddrPort{}, nil)
	if v.Action != milter.Tempfail || !v.Default || v.Milter != "down" {
		t.Errorf("verdict %+v", v)
	}
	if v := c.Mail("a@example.net", nil, nil); v.Action != milter.Tempfail || !v.Default {
		t.Errorf("later verdict %+v", v)
	}
}

// Timeouts on an injected clock: the milter's silence is cut after its
// command timeout at RCPT, after its content timeout at the end of the
// message, and its default action applies.
func TestChainTimeouts(t *testing.T) {
	for _, tc := range []struct {
		stage   byte
		timeout time.Duration
		action  milter.DefaultAction
		want    milter.Action
	}{
		{'R', 30 * time.Second, milter.DefaultTempfail, milter.Tempfail},
		{'E', 5 * time.Minute, milter.DefaultTempfail, milter.Tempfail},
		{'E', 5 * time.Minute, milter.DefaultAccept, milter.Continue},
	} {
		t.Run(string(tc.stage)+" "+string(tc.action), func(t *testing.T) {
			srv := &miltertest.Server{Handler: func(ev *miltertest.Event) []miltertest.Packet {
				if ev.Code == tc.stage {
					if ev.Code == 'E' { // changes sent before the silence are dropped
						return []miltertest.Packet{miltertest.AddHeader("X-Half", "done"), miltertest.Hang}
					}
					return []miltertest.Packet{miltertest.Hang}
				}
				return nil
			}}
			srv.Start(t)
			timers := &testkit.Timers{}
			rec := &recorder{}
			m := testMilter("slow", srv)
			m.CommandTimeout, m.ContentTimeout, m.DefaultAction = 30*time.Second, 5*time.Minute, tc.action
			c := newChain(t, milter.ChainOptions{Options: milter.Options{Timers: timers}, Observer: rec}, m)
			c.Connect("h", netip.AddrPort{}, nil)
			c.Mail("a@example.net", nil, nil)
			go func() {
				// Once the milter has the event, its timer is armed.
				for !strings.ContainsRune(srv.Codes(), rune(tc.stage)) {
					time.Sleep(time.Millisecond)
				}
				if !timers.WaitArmed(tc.timeout, 10*time.Second) {
					t.Error("no timer armed")
				}
				timers.Advance(tc.timeout - time.Second)
				time.Sleep(20 * time.Millisecond) // a premature timeout would fire now
				timers.Advance(time.Second)
			}()
			var v milter.Verdict
			h := milter.ParseHeader([]byte(chainHeader))
			if tc.stage == 'R' {
				v = c.Rcpt("b@example.org", nil, nil)
			} else {
				c.Rcpt("b@example.org", nil, nil)
				c.Data(nil)
				var err error
				if v, err = c.Message(h, &memTx{body: []byte("x\r\n")}, nil, nil); err != nil {
					t.Fatal(err)
				}
			}
			if v.Action != tc.want {
				t.Errorf("verdict %+v, want %s", v, tc.want)
			}
			if len(rec.failures) != 1 || rec.failures[0].Kind != milter.KindTimeout || !errors.Is(rec.failures[0], milter.ErrTimeout) {
				t.Fatalf("failures %q", rec.failed)
			}
			if strings.Contains(string(h.AppendTo(nil)), "X-Half") {
				t.Error("a change of the milter that timed out was applied")
			}
		})
	}
}

// A milter's changes are held until its final answer: a refusal drops
// them and the new body.
func TestChainChangesDroppedOnReject(t *testing.T) {
	srv := &miltertest.Server{Handler: func(ev *miltertest.Event) []miltertest.Packet {
		if ev.Code == 'E' {
			return append(miltertest.ReplaceBody([]byte("new\r\n")), miltertest.AddRcpt("x@example.org"), miltertest.Discard)
		}
		return nil
	}}
	srv.Start(t)
	c := newChain(t, milter.ChainOptions{}, testMilter("m", srv))
	envelope(t, c)
	tx := &memTx{body: []byte("old\r\n")}
	v, err := c.Message(milter.ParseHeader([]byte(chainHeader)), tx, nil, nil)
	if err != nil || v.Action != milter.Discard {
		t.Fatal(v, err)
	}
	if string(tx.body) != "old\r\n" || tx.discarded != 1 || len(tx.envs) != 0 {
		t.Errorf("body %q, discarded %d, envelope changes %v", tx.body, tx.discarded, tx.envs)
	}
}

// Changes Postern refuses are the milter's failure: its default action
// applies and the message stays as it was.
func TestChainRefusedChanges(t *testing.T) {
	for name, tc := range map[string]struct {
		packets []miltertest.Packet
		refuse  error
		actions uint32
	}{
		"bad header name":        {packets: []miltertest.Packet{miltertest.AddHeader("Bad Name", "x")}},
		"header value with CRLF": {packets: []miltertest.Packet{miltertest.AddHeader("X", "a\r\nb")}},
		"empty continuation":     {packets: []miltertest.Packet{miltertest.AddHeader("X", "a\n\n b")}},
		"not negotiated":         {packets: []miltertest.Packet{miltertest.AddRcpt("x@example.org")}, actions: 1},
		"envelope refused":       {packets: []miltertest.Packet{miltertest.DeleteRcpt("bob@example.org")}, refuse: errors.New("no recipient left")},
		"NUL in the new body":    {packets: miltertest.ReplaceBody([]byte("a\x00b"))},
		"new body too big":       {packets: miltertest.ReplaceBody(bytes.Repeat([]byte("0123456789\r\n"), 100))},
		"line too long":          {packets: miltertest.ReplaceBody(bytes.Repeat([]byte("x"), 1001))},
		"body after a change":    {packets: append([]miltertest.Packet{miltertest.ReplaceBody([]byte("a"))[0], miltertest.AddHeader("X", "y")}, miltertest.ReplaceBody([]byte("b"))...)},
	} {
		t.Run(name, func(t *testing.T) {
			srv := &miltertest.Server{Actions: tc.actions, Handler: func(ev *miltertest.Event) []miltertest.Packet {
				if ev.Code == 'E' {
					return append(append([]miltertest.Packet{miltertest.AddHeader("X-Before", "1")}, tc.packets...), miltertest.Continue)
				}
				return nil
			}}
			srv.Start(t)
			rec := &recorder{}
			c := newChain(t, milter.ChainOptions{Observer: rec, MaxLine: 1000, MaxSize: 1000}, testMilter("m", srv))
			envelope(t, c)
			h := milter.ParseHeader([]byte(chainHeader))
			tx := &memTx{body: []byte("old\r\n"), refuse: tc.refuse}
			v, err := c.Message(h, tx, nil, nil)
			if err != nil || v.Action != milter.Tempfail || !v.Default {
				t.Fatalf("verdict %+v, %v", v, err)
			}
			if len(rec.failures) != 1 || rec.failures[0].Kind != milter.KindProtocol {
				t.Errorf("failures %q", rec.failed)
			}
			if got := string(h.AppendTo(nil)); got != chainHeader || string(tx.body) != "old\r\n" {
				t.Errorf("message changed: %q %q", got, tx.body)
			}
		})
	}
}

// A discard before the end of the message: the message is not handed to
// any milter, and its Message verdict is Discard.
func TestChainDiscardEarly(t *testing.T) {
	srv := &miltertest.Server{Handler: func(ev *miltertest.Event) []miltertest.Packet {
		if ev.Code == 'R' {
			return []miltertest.Packet{miltertest.Discard}
		}
		return nil
	}}
	srv.Start(t)
	c := newChain(t, milter.ChainOptions{}, testMilter("m", srv))
	c.Connect("h", netip.AddrPort{}, nil)
	c.Mail("a@example.net", nil, nil)
	v := c.Rcpt("b@example.org", nil, nil)
	if v.Action != milter.Discard {
		t.Fatal(v)
	}
	c.Discarding(v)
	if v := c.Rcpt("c@example.org", nil, nil); v.Action != milter.Continue {
		t.Fatal(v)
	}
	if v, _ := c.Message(milter.ParseHeader([]byte(chainHeader)), &memTx{}, nil, nil); v.Action != milter.Discard || v.Milter != "m" {
		t.Fatal(v)
	}
	if got := srv.Codes(); got != "CMR" {
		t.Errorf("events %q", got)
	}
}

// failingTx is a memTx whose new bodies cannot be stored (a full disk).
type failingTx struct{ memTx }

func (f *failingTx) NewBody() (milter.BodyWriter, error) {
	return nil, errors.New("no space left on device")
}

// A body the MTA cannot store is its failure, not the milter's: Message
// returns it, the milter is not counted as failed, and what follows in
// the session fails for now rather than passing unfiltered.
func TestChainLocalError(t *testing.T) {
	srv := &miltertest.Server{Handler: miltertest.At('E', append(miltertest.ReplaceBody([]byte("new\r\n")), miltertest.Continue)...)}
	srv.Start(t)
	rec := &recorder{}
	c := newChain(t, milter.ChainOptions{Observer: rec}, testMilter("m", srv))
	envelope(t, c)
	_, err := c.Message(milter.ParseHeader([]byte(chainHeader)), &failingTx{memTx{body: []byte("old\r\n")}}, nil, nil)
	var le *milter.LocalError
	if !errors.As(err, &le) || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("error %v", err)
	}
	if len(rec.failed) != 0 {
		t.Errorf("the milter was counted as failed: %q", rec.failed)
	}
	c.Abort()
	if v := c.Mail("a@example.net", nil, nil); v.Action != milter.Tempfail {
		t.Errorf("next message: %+v", v)
	}
}
