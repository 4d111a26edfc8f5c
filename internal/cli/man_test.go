package cli

import (
	"bytes"
	"strings"
	"testing"
)

// TestManual: the page is the head, SYNOPSIS, the sections before,
// COMMANDS and the sections after, in that order; a heading of several
// words is quoted; text is escaped for roff.
func TestManual(t *testing.T) {
	p, _, _ := testProgram()
	var b bytes.Buffer
	if err := p.WriteManual(&b, Manual{
		Head:   ".TH PROG 1\n.SH NAME\nprog \\- does things",
		Before: []Section{{Heading: "DESCRIPTION", Body: RoffParagraphs("One.\n\n.Two, a \\ backslash.")}},
		After:  []Section{{Heading: "SEE ALSO", Body: "other(1)"}},
	}); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	order := []string{
		".TH PROG 1\n.SH NAME\nprog \\- does things\n.SH SYNOPSIS\n",
		`\fBprog\fR \fBdo \fIARG\fB... [\-\-every duration] [\-\-n \fIN\fB] [\-\-v] [\-\-config \fIFILE\fB | \-\-data \fIDIR\fB]\fR` + "\n.br\n",
		`\fBprog\fR \fBraw [\-t] [\-f \fIADDR\fB] [\fIRCPT\fB...]\fR`,
		".SH DESCRIPTION\nOne.\n.PP\n\\&.Two, a \\e backslash.\n.SH COMMANDS\n",
		".SS \"Doing\"\n.TP\n\\fBprog\\fR \\fBdo",
		"Do things.\n.IP\nFirst paragraph.\n.IP\nSecond -paragraph.\n.RS\n.TP\n\\fB\\-\\-every\\fR \\fIduration\\fR\nhow often\n.TP\n\\fB\\-\\-n\\fR \\fIN\\fR\nhow many N (default 3)\n",
		".PP\nExample:\n.RS 2\n.nf\nprog do x \\-n 2\n.fi\n.RE\n.RE\n",
		".SS \"Groups\"\n.PP\n\\fBprog grp\\fR: A group.\nWhat the group is for.\n",
		".SH \"SEE ALSO\"\nother(1)\n",
	}
	at := 0
	for _, s := range order {
		i := strings.Index(page[at:], s)
		if i < 0 {
			t.Fatalf("the page lacks, after byte %d:\n%s\npage:\n%s", at, s, page)
		}
		at += i + len(s)
	}
	if at != len(page) {
		t.Errorf("the page goes on after SEE ALSO:\n%s", page[at:])
	}
}
