package sasl

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func FuzzSCRAMClientFirst(f *testing.F) {
	for _, ex := range scramExamples {
		f.Add(ex.messages[0], false)
	}
	f.Add("p=tls-exporter,a=user,n=user,r=abc", true)
	f.Add("y,a=us=2Cer,n=us=3Der,r=abc,ext=1", false)
	f.Add("n,,n=user,r=", false)
	secrets := rfcSecrets(f)
	bindings := map[string][]byte{CBTLSExporter: make([]byte, 32)}
	f.Fuzz(func(t *testing.T, msg string, plus bool) {
		s := NewSCRAM(context.Background(), SCRAMOptions{
			Hash: HashSHA256, Plus: plus, PlusOffered: true, Bindings: bindings,
			Lookup: secrets, Nonce: func() string { return "SERVERNONCE" },
		})
		ch, done, err := s.Next([]byte(msg))
		if done || s.Identity() != "" {
			t.Fatalf("done=%v identity %q after the first message", done, s.Identity())
		}
		if err != nil {
			if ch != nil {
				t.Fatalf("challenge %q with error %v", ch, err)
			}
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrInvalidCredentials) {
				t.Fatalf("error %v", err)
			}
			return
		}
		// server-first = nonce "," salt "," iteration-count, the nonce
		// being the client's followed by ours.
		_, bare, _ := strings.Cut(msg, ",")
		_, bare, _ = strings.Cut(bare, ",")
		_, rest, _ := strings.Cut(bare, ",r=")
		cnonce, _, _ := strings.Cut(rest, ",")
		if !strings.HasPrefix(string(ch), "r="+cnonce+"SERVERNONCE,s=") || !strings.HasSuffix(string(ch), ",i=4096") {
			t.Fatalf("server-first %q for %q", ch, msg)
		}
		if len(s.Username()) == 0 || len(s.Username()) > MaxFieldLen {
			t.Fatalf("username %q", s.Username())
		}
	})
}

func FuzzSCRAMClientFinal(f *testing.F) {
	ex := scramExamples[1]
	f.Add(ex.messages[2], true)
	f.Add(ex.messages[2], false)
	f.Add("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,e=x,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", false)
	f.Add("c=biws,r=x,p=", false)
	f.Add("c=,r=,p=AAAA", true)
	secrets := rfcSecrets(f)
	f.Fuzz(func(t *testing.T, msg string, ack bool) {
		s := NewSCRAM(context.Background(), SCRAMOptions{
			Hash: ex.hash, Lookup: secrets, Nonce: func() string { return ex.serverNonce },
		})
		if ch, _, err := s.Next([]byte(ex.messages[0])); err != nil || string(ch) != ex.messages[1] {
			t.Fatalf("server-first %q %v", ch, err)
		}
		ch, done, err := s.Next([]byte(msg))
		if done || s.Identity() != "" {
			t.Fatalf("done=%v identity %q before the acknowledgement", done, s.Identity())
		}
		if err == nil {
			if msg != ex.messages[2] || string(ch) != ex.messages[3] {
				t.Fatalf("accepted %q with %q", msg, ch)
			}
		} else {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrInvalidCredentials) {
				t.Fatalf("error %v", err)
			}
			if ch != nil && !strings.HasPrefix(string(ch), "e=") {
				t.Fatalf("error challenge %q", ch)
			}
			return
		}
		var end []byte
		if !ack {
			end = []byte(msg)
		}
		_, done, err = s.Next(end)
		if done != ack || (done && s.Identity() != "user") || (!done && s.Identity() != "") {
			t.Fatalf("end: done=%v err=%v identity %q", done, err, s.Identity())
		}
	})
}
