package smtp

import (
	"bufio"
	"errors"
	"io"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestReadReply(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Reply
		err  error
	}{
		{"220 mx.example.net ESMTP\r\n", Reply{Code: 220, Lines: []string{"mx.example.net ESMTP"}}, nil},
		{"250\r\n", Reply{Code: 250, Lines: []string{""}}, nil},
		{"250 \r\n", Reply{Code: 250, Lines: []string{""}}, nil},
		{"250-mx.example.net\r\n250-PIPELINING\r\n250 SIZE 1000\r\n",
			Reply{Code: 250, Lines: []string{"mx.example.net", "PIPELINING", "SIZE 1000"}}, nil},
		// RFC 2034 §4: the enhanced code is taken from the first line and
		// removed from every line that repeats it.
		{"550-5.1.1 no such\r\n550 5.1.1 user\r\n", Reply{Code: 550, Enhanced: "5.1.1", Lines: []string{"no such", "user"}}, nil},
		{"550-5.1.1 a\r\n550 5.7.1 b\r\n", Reply{Code: 550, Enhanced: "5.1.1", Lines: []string{"a", "5.7.1 b"}}, nil},
		{"451 4.3.0\r\n", Reply{Code: 451, Enhanced: "4.3.0", Lines: []string{""}}, nil},
		// A class that is not the reply's, or a malformed code, is text.
		{"550 4.1.1 odd\r\n", Reply{Code: 550, Lines: []string{"4.1.1 odd"}}, nil},
		{"550 5.1234.1 odd\r\n", Reply{Code: 550, Lines: []string{"5.1234.1 odd"}}, nil},
		{"250 2.0.0. x\r\n", Reply{Code: 250, Lines: []string{"2.0.0. x"}}, nil},
		{"199 x\r\n", Reply{}, ErrBadReply},
		{"600 x\r\n", Reply{}, ErrBadReply},
		{"25\r\n", Reply{}, ErrBadReply},
		{"250x\r\n", Reply{}, ErrBadReply},
		{"2a0 x\r\n", Reply{}, ErrBadReply},
		{"250-a\r\n251 b\r\n", Reply{Code: 250, Lines: []string{"a"}}, ErrBadReply},
		{"250-a\r\n", Reply{Code: 250, Lines: []string{"a"}}, io.EOF},
		{"250 a\n", Reply{}, ErrBareLF},
		{"250 a\rb\r\n", Reply{}, ErrBareCR},
		{"250 " + strings.Repeat("x", MaxReplyLine) + "\r\n", Reply{}, ErrLineTooLong},
		{strings.Repeat("250-x\r\n", MaxReplyLines) + "250 x\r\n", Reply{}, ErrBadReply},
		{"", Reply{}, io.EOF},
	} {
		got, err := ReadReply(NewReader(bufio.NewReader(strings.NewReader(c.in))))
		if !errors.Is(err, c.err) || (c.err == nil && err != nil) {
			t.Errorf("ReadReply(%.40q) error = %v, want %v", c.in, err, c.err)
			continue
		}
		if c.err == ErrBadReply && strings.HasPrefix(c.in, "250-x") {
			continue // the lines read before the limit
		}
		if got.Code != c.want.Code || got.Enhanced != c.want.Enhanced || !slices.Equal(got.Lines, c.want.Lines) {
			t.Errorf("ReadReply(%.40q) = %+v, want %+v", c.in, got, c.want)
		}
	}
}

func TestReplyString(t *testing.T) {
	r := Reply{Code: 550, Enhanced: "5.1.1", Lines: []string{"no such", "user"}}
	if s := r.String(); s != "550 5.1.1 no such user" {
		t.Errorf("String() = %q", s)
	}
	if e := r.Err(); e.Code != 550 || e.Enhanced != "5.1.1" || e.Message != "no such user" {
		t.Errorf("Err() = %+v", e)
	}
	if s := (Reply{Code: 250, Lines: []string{""}}).String(); s != "250" {
		t.Errorf("String() = %q, want 250", s)
	}
}

var (
	replyLineRE = regexp.MustCompile(`(?s)^([2-5][0-9][0-9])(?:([ -])(.*))?$`)
	enhancedRE  = regexp.MustCompile(`^[2-5]\.[0-9]{1,3}\.[0-9]{1,3}$`)
)

// refReadReply is a model of ReadReply built on refReadLine and regular
// expressions. It returns the reply, the error (ErrBadReply for any
// malformed line) and the input that follows.
func refReadReply(data []byte) (Reply, error, []byte) {
	var rep Reply
	for n := 0; ; n++ {
		if n >= MaxReplyLines {
			return rep, ErrBadReply, data
		}
		line, err, rest := refReadLine(data, MaxReplyLine)
		data = rest
		if err != nil {
			return rep, err, data
		}
		m := replyLineRE.FindStringSubmatch(string(line))
		if m == nil {
			return rep, ErrBadReply, data
		}
		code := int(m[1][0]-'0')*100 + int(m[1][1]-'0')*10 + int(m[1][2]-'0')
		if n > 0 && code != rep.Code {
			return rep, ErrBadReply, data
		}
		rep.Code = code
		text := m[3]
		word, after, _ := strings.Cut(text, " ")
		if enhancedRE.MatchString(word) && word[0] == m[1][0] {
			if n == 0 {
				rep.Enhanced = word
			}
			if word == rep.Enhanced {
				text = after
			}
		}
		rep.Lines = append(rep.Lines, text)
		if m[2] != "-" {
			return rep, nil, data
		}
	}
}

func FuzzReadReply(f *testing.F) {
	for _, s := range []string{
		"220 mx ESMTP\r\n", "250-a\r\n250-SIZE 10\r\n250 8BITMIME\r\n", "550-5.1.1 x\r\n550 5.1.1 y\r\n",
		"250\r\n", "250 \r\n", "250-a\r\n251 b\r\n", "199 x\r\n", "250x\r\n", "250 a\n", "250 a\rb\r\n",
		"421 4.4.2 bye\r\n220 again\r\n", "250 2.0.0. x\r\n", "550 4.1.1 x\r\n",
	} {
		f.Add([]byte(s), uint8(0))
		f.Add([]byte(s), uint8(1))
	}
	f.Fuzz(func(t *testing.T, data []byte, size uint8) {
		r := NewReader(fuzzSource(data, size))
		model := data
		for range len(data) + 1 {
			got, err := ReadReply(r)
			want, wantErr, rest := refReadReply(model)
			model = rest
			if !errors.Is(err, wantErr) || (wantErr == nil) != (err == nil) {
				t.Fatalf("ReadReply error %v; model says %v", err, wantErr)
			}
			if got.Code != want.Code || got.Enhanced != want.Enhanced || !slices.Equal(got.Lines, want.Lines) {
				t.Fatalf("ReadReply = %+v; model says %+v", got, want)
			}
			if err == nil {
				if got.Code < 200 || got.Code > 599 || len(got.Lines) == 0 || len(got.Lines) > MaxReplyLines {
					t.Fatalf("ReadReply returned a bad reply %+v", got)
				}
				for _, l := range got.Lines {
					if strings.ContainsAny(l, "\r\n\x00") {
						t.Fatalf("ReadReply returned a line with CR, LF or NUL: %q", l)
					}
				}
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return
			}
		}
		t.Fatal("ReadReply made no progress")
	})
}
