package milter

import (
	"strings"
	"testing"
)

const testHeader = "Authentication-Results: mx.example.org; spf=pass\r\n" +
	"Received: from client.example ([192.0.2.1]) by mx.example.org\r\n" +
	"\tid 0123; Mon, 6 Jul 2026 10:00:00 +0000\r\n" +
	"Received: from elsewhere by client.example\r\n" +
	"Subject: Hello\r\n" +
	"To: bob@example.org,\r\n" +
	" carol@example.org\r\n" +
	"X-Space:  two spaces\r\n" +
	"\r\n"

// fields returns what milters are shown, as "name=value" lines.
func fields(h *Header, lead bool) string {
	var b strings.Builder
	h.Each(lead, func(name, value string) bool {
		b.WriteString(name + "=" + value + "|")
		return true
	})
	return b.String()
}

func TestHeaderShown(t *testing.T) {
	h := ParseHeader([]byte(testHeader))
	// The first Received, the MTA's own, is hidden; values as Sendmail
	// sends them: one space after the colon dropped, folds as "\n".
	want := "Authentication-Results=mx.example.org; spf=pass|Received=from elsewhere by client.example|" +
		"Subject=Hello|To=bob@example.org,\n carol@example.org|X-Space= two spaces|"
	if got := fields(h, false); got != want {
		t.Errorf("shown\n%q\nwant\n%q", got, want)
	}
	if got := fields(h, true); !strings.Contains(got, "Subject= Hello|") {
		t.Errorf("with SMFIP_HDR_LEADSPC: %q", got)
	}
	if got := string(h.AppendTo(nil)); got != testHeader || h.Len() != len(testHeader) {
		t.Errorf("unchanged header comes back as\n%q", got)
	}
}

func TestHeaderChanges(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(h *Header)
		want string // the header after, without the lines that stay
		not  string // must be gone
	}{
		{"add at the end", func(h *Header) { h.Add("X-Spam", " Yes") }, "X-Space:  two spaces\r\nX-Spam: Yes\r\n\r\n", ""},
		{"add folded", func(h *Header) { h.Add("X-Spamd-Result", " default: False\n\tSYMBOL_A(1.0)") },
			"X-Spamd-Result: default: False\r\n\tSYMBOL_A(1.0)\r\n\r\n", ""},
		// Index 1 of Received skips the hidden one, the MTA's own.
		{"change the first Received a milter sees", func(h *Header) { h.Change(1, "Received", " replaced") },
			"Received: from client.example ([192.0.2.1]) by mx.example.org\r\n\tid 0123; Mon, 6 Jul 2026 10:00:00 +0000\r\nReceived: replaced\r\nSubject:", "elsewhere"},
		{"delete", func(h *Header) { h.Change(1, "subject", "") }, "Received: from elsewhere by client.example\r\nTo:", "Subject"},
		{"change a field that is not there adds it", func(h *Header) { h.Change(2, "Subject", " Second") }, "X-Space:  two spaces\r\nSubject: Second\r\n\r\n", ""},
		{"delete a field that is not there", func(h *Header) { h.Change(3, "Received", "") }, testHeader, ""},
		// Insertion counts every field, the hidden one too: 0 is the top.
		{"insert at the top", func(h *Header) { h.Insert(0, "DKIM-Signature", " v=1") }, "DKIM-Signature: v=1\r\nAuthentication-Results:", ""},
		{"insert after our Received", func(h *Header) { h.Insert(2, "X-Two", " 2") }, "+0000\r\nX-Two: 2\r\nReceived: from elsewhere", ""},
		{"insert past the end", func(h *Header) { h.Insert(99, "X-End", " e") }, "X-Space:  two spaces\r\nX-End: e\r\n\r\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := ParseHeader([]byte(testHeader))
			tc.edit(h)
			got := string(h.AppendTo(nil))
			if !strings.Contains(got, tc.want) || tc.not != "" && strings.Contains(got, tc.not) {
				t.Errorf("after the change:\n%s", got)
			}
			if h.Len() != len(got) {
				t.Errorf("Len %d, header of %d bytes", h.Len(), len(got))
			}
			if !strings.HasSuffix(got, "\r\n\r\n") {
				t.Errorf("header does not end with its empty line: %q", got)
			}
		})
	}
}

// A header section without the empty line (a message without body) and
// a line that is no field are kept as they are; the line is not shown.
func TestHeaderOddLines(t *testing.T) {
	in := "Subject: x\r\nnot a field\r\n continued\r\nTo: y\r\n"
	h := ParseHeader([]byte(in))
	if got := fields(h, false); got != "Subject=x|To=y|" {
		t.Errorf("shown %q", got)
	}
	h.Add("X-A", " 1")
	if got := string(h.AppendTo(nil)); got != in+"X-A: 1\r\n" {
		t.Errorf("got %q", got)
	}
}
