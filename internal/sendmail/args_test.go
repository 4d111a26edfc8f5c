package sendmail

import (
	"reflect"
	"strings"
	"testing"

	"postern/internal/smtp"
)

// TestParseArgs: the options local programs pass, the modes, and the
// command lines refused.
func TestParseArgs(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want Args
	}{
		{[]string{"-t", "-i"}, Args{Extract: true, IgnoreDots: true}},
		{[]string{"-oi", "-f", "a@x.test", "b@x.test"}, Args{IgnoreDots: true, From: "a@x.test", FromSet: true, Recipients: []string{"b@x.test"}}},
		{[]string{"-fa@x.test", "-FAlice Example", "b@x.test", "c@x.test"}, Args{From: "a@x.test", FromSet: true, FullName: "Alice Example", Recipients: []string{"b@x.test", "c@x.test"}}},
		{[]string{"-F", "Alice", "-r", "<a@x.test>", "b@x.test"}, Args{From: "a@x.test", FromSet: true, FullName: "Alice", Recipients: []string{"b@x.test"}}},
		{[]string{"-f", "<>", "b@x.test"}, Args{FromSet: true, Recipients: []string{"b@x.test"}}},
		{[]string{"-bm", "-odi", "-oem", "-o", "X", "-v", "-B", "8BITMIME", "b@x.test"}, Args{Recipients: []string{"b@x.test"}}},
		// The DSN options (RFC 3461), as Postfix's and Sendmail's.
		{[]string{"-N", "never", "b@x.test"}, Args{Notify: smtp.NotifyNever, Recipients: []string{"b@x.test"}}},
		{[]string{"-Nsuccess,delay,failure", "-R", "hdrs", "-V", "job+42=a b", "b@x.test"},
			Args{Notify: smtp.NotifySuccess | smtp.NotifyDelay | smtp.NotifyFailure, Ret: "HDRS", EnvID: "job+42=a b", Recipients: []string{"b@x.test"}}},
		{[]string{"-NFAILURE", "-RFULL", "-V" + strings.Repeat("e", 100), "b@x.test"},
			Args{Notify: smtp.NotifyFailure, Ret: "FULL", EnvID: strings.Repeat("e", 100), Recipients: []string{"b@x.test"}}},
		{[]string{"-C", "/etc/p.toml", "--", "-b@x.test"}, Args{Config: "/etc/p.toml", Recipients: []string{"-b@x.test"}}},
		{[]string{"--config=/etc/p.toml", "b@x.test"}, Args{Config: "/etc/p.toml", Recipients: []string{"b@x.test"}}},
		{[]string{"--data", "d", "b@x.test"}, Args{Data: "d", Recipients: []string{"b@x.test"}}},
		{[]string{"-bp"}, Args{Mode: ModePrint}},
		{[]string{"-bs"}, Args{Mode: ModeSMTP}},
		{[]string{"-q"}, Args{Mode: ModeFlush}},
		{[]string{"-qRexample.com"}, Args{Mode: ModeFlush, Flush: "Rexample.com"}},
		{[]string{"-q30m"}, Args{Mode: ModeFlush, Flush: "interval"}},
		// Debian's cron, with its double space: "%s -FCronDaemon -i -B8BITMIME -oem  %s".
		{strings.Fields("-FCronDaemon -i -B8BITMIME -oem  root"), Args{FullName: "CronDaemon", IgnoreDots: true, Recipients: []string{"root"}}},
	} {
		got, err := ParseArgs(tc.args)
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		if !reflect.DeepEqual(*got, tc.want) {
			t.Errorf("%q: %+v, want %+v", tc.args, *got, tc.want)
		}
	}
	for _, bad := range [][]string{{"-bx"}, {"-qR"}, {"-qX"}, {"-x"}, {"-f"}, {"-F"}, {"-f", "<<>>"}, {"-f<<>>"}, {"-f", "a>@x.test"}, {"--config"}, {"--data", "d", "--config", "c"},
		// -N: never alone, or a list of success, delay and failure, each once.
		{"-N"}, {"-N", ""}, {"-N", "never,success"}, {"-N", "success,success"}, {"-N", "success,"}, {"-N", "always"},
		// -R: full or hdrs.
		{"-R"}, {"-R", "headers"}, {"-R", ""},
		// -V: printable ASCII, at most 100 characters as xtext (RFC 3461 §4.4).
		{"-V"}, {"-V", ""}, {"-V", "a\tb"}, {"-V", "caf\u00e9"}, {"-V", strings.Repeat("e", 101)}, {"-V", strings.Repeat("+", 34)},
	} {
		if got, err := ParseArgs(bad); err == nil || !strings.HasPrefix(err.Error(), "sendmail: ") {
			t.Errorf("%q: %+v, %v; want an error", bad, got, err)
		}
	}
}

// FuzzParseArgs: no command line makes the parser panic; what it
// accepts has no angle bracket left in the sender (the null sender
// "<>" is empty) and not both --config and
// --data.
func FuzzParseArgs(f *testing.F) {
	for _, s := range []string{"-t -i", "-f <> a@x", "-N success,delay -R hdrs -V id+2B1 a@x", "-Nnever -Rfull -Vx", "-FCronDaemon -i -B8BITMIME -oem  root", "-qRexample.com", "--config=c", "-C", "-- -a", "-o"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		o, err := ParseArgs(strings.Split(line, " "))
		if err != nil {
			return
		}
		if strings.ContainsAny(o.From, "<>") || (o.Config != "" && o.Data != "") {
			t.Errorf("%q: %+v", line, o)
		}
		// The DSN values are what an SMTP client could send (RFC 3461).
		if o.EnvID != "" {
			if got, err := smtp.ParseEnvID(smtp.XtextEncode(o.EnvID)); err != nil || got != o.EnvID {
				t.Errorf("%q: ENVID %q is no valid ENVID: %v", line, o.EnvID, err)
			}
		}
		if o.Notify != 0 {
			if n, err := smtp.ParseNotify(o.Notify.String()); err != nil || n != o.Notify {
				t.Errorf("%q: NOTIFY %v: %v", line, o.Notify, err)
			}
		}
		if o.Ret != "" && o.Ret != "FULL" && o.Ret != "HDRS" {
			t.Errorf("%q: RET %q", line, o.Ret)
		}
	})
}
