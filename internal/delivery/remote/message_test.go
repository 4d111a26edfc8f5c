package remote

import (
	"testing"

	"postern/internal/smtp"
)

// NewMessage asks for SMTPUTF8 only when something needs it (RFC 6531
// §3.2), and takes "TLS-Required: No" in any case and spacing (RFC 8689
// §5), but not another value.
func TestNewMessage(t *testing.T) {
	for _, tt := range []struct {
		name           string
		env            smtp.Envelope
		rcpts          []string
		hdr            string
		utf8, optional bool
	}{
		{"ascii with SMTPUTF8", smtp.Envelope{From: "a@x.test", SMTPUTF8: true}, []string{"b@y.test"}, "Subject: hi\r\n", false, false},
		{"utf-8 sender", smtp.Envelope{From: "zoë@x.test", SMTPUTF8: true}, []string{"b@y.test"}, "Subject: hi\r\n", true, false},
		{"utf-8 recipient", smtp.Envelope{From: "a@x.test", SMTPUTF8: true}, []string{"b@y.test", "ñ@y.test"}, "", true, false},
		{"utf-8 header", smtp.Envelope{From: "a@x.test", SMTPUTF8: true}, []string{"b@y.test"}, "Subject: ÿ\r\n", true, false},
		{"utf-8 without SMTPUTF8", smtp.Envelope{From: "zoë@x.test"}, []string{"b@y.test"}, "", false, false},
		{"TLS-Required: No", smtp.Envelope{}, nil, "TLS-Required:  no \r\n", false, true},
		{"TLS-Required: yes", smtp.Envelope{}, nil, "TLS-Required: Yes\r\n", false, false},
	} {
		m := NewMessage(&tt.env, tt.rcpts, &smtp.Message{Header: []byte(tt.hdr)})
		if m.SMTPUTF8 != tt.utf8 || m.TLSOptional != tt.optional {
			t.Errorf("%s: SMTPUTF8 %v, TLSOptional %v; want %v, %v", tt.name, m.SMTPUTF8, m.TLSOptional, tt.utf8, tt.optional)
		}
	}
	env := smtp.Envelope{ID: "q1", From: "a@x.test", Body: "8BITMIME", RequireTLS: true, Ret: "HDRS", EnvID: "e1",
		DSN: map[string]smtp.RcptDSN{"b@y.test": {}}}
	if m := NewMessage(&env, []string{"b@y.test"}, &smtp.Message{}); m.ID != "q1" || m.From != "a@x.test" || !m.EightBit || !m.RequireTLS || len(m.Rcpts) != 1 ||
		m.Ret != "HDRS" || m.EnvID != "e1" || len(m.DSN) != 1 {
		t.Errorf("envelope: %+v", m)
	}
}
