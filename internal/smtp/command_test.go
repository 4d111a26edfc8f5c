package smtp

import (
	"errors"
	"testing"
)

func TestParseCommand(t *testing.T) {
	tests := []struct {
		line    string
		verb    string
		arg     string
		wantErr bool
	}{
		{"EHLO example.com", "EHLO", "example.com", false},
		{"ehlo example.com", "EHLO", "example.com", false},
		{"QUIT", "QUIT", "", false},
		{"quit ", "QUIT", "", false},
		{"MAIL FROM:<a@b> SIZE=10", "MAIL", "FROM:<a@b> SIZE=10", false},
		{"MAIL  FROM:<a@b>", "MAIL", " FROM:<a@b>", false},
		{"StartTLS", "STARTTLS", "", false},
		{"XCLIENT ADDR=1", "XCLIENT", "ADDR=1", false},
		{"ABCDEFGHIJKLMNOP", "ABCDEFGHIJKLMNOP", "", false},
		{"ABCDEFGHIJKLMNOPQ", "", "", true},
		{"ABCDEFGHIJKLMNOPQ x", "", "", true},
		{"", "", "", true},
		{" QUIT", "", "", true},
		{"MAIL:FROM:<a@b>", "", "", true},
		{"HELO\tx", "", "", true},
		{"X-FOO", "", "", true},
		{"B1", "", "", true},
		{"ÉHLO x", "", "", true},
	}
	for _, tt := range tests {
		cmd, err := ParseCommand([]byte(tt.line))
		if tt.wantErr {
			var e *Error
			if !errors.As(err, &e) || e.Code != 500 || e.Enhanced != "5.5.2" {
				t.Errorf("ParseCommand(%q) = %+v, %v; want 500 5.5.2", tt.line, cmd, err)
			}
			continue
		}
		if err != nil || cmd.Verb != tt.verb || cmd.Arg != tt.arg {
			t.Errorf("ParseCommand(%q) = %+v, %v; want {%q %q}", tt.line, cmd, err, tt.verb, tt.arg)
		}
	}
}

func TestParseCommandAllocs(t *testing.T) {
	line := []byte("QUIT")
	if n := testing.AllocsPerRun(100, func() { ParseCommand(line) }); n != 0 {
		t.Errorf("ParseCommand(QUIT) allocates %v times", n)
	}
}
