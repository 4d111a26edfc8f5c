package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	cmdline "postern/internal/cli"
	"regexp"
	"strings"
	"testing"
	"time"
)

// testCLI is a cli over the given streams that finds no configuration
// in the environment or in /etc: the tests name theirs.
func testCLI(stdin io.Reader, stdout, stderr io.Writer, now func() time.Time) *cli {
	if now == nil {
		now = time.Now
	}
	return &cli{stdin: stdin, stdout: stdout, stderr: stderr, now: now,
		getenv: func(string) string { return "" }, systemConfig: "/nonexistent/postern/postern.toml"}
}

// run runs a command line as main does, but with testCLI's
// configuration search, and returns the exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return testCLI(stdin, stdout, stderr, nil).run(args)
}

// dkimCmd runs `postern dkim ARGS...` with the clock now.
func dkimCmd(args []string, stdout io.Writer, now func() time.Time) error {
	return testCLI(nil, stdout, io.Discard, now).exec(append([]string{"dkim"}, args...))
}

// cmdReload runs `postern reload ARGS...`.
func cmdReload(args []string, stdout io.Writer) error {
	return testCLI(nil, stdout, io.Discard, nil).exec(append([]string{"reload"}, args...))
}

// cmdSendmail runs `postern sendmail ARGS...` and returns its exit status.
func cmdSendmail(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return testCLI(stdin, stdout, stderr, nil).sendmail(args)
}

// TestHelpEveryCommand: every command's -h and --help print its usage on
// stdout, exit 0: its synopsis, what it does, each of its flags and an
// example; help COMMAND prints the same. A group lists its commands.
func TestHelpEveryCommand(t *testing.T) {
	p := testCLI(nil, nil, nil, nil).program()
	for _, cmd := range p.Commands {
		args := strings.Fields(cmd.Name)
		for _, h := range []string{"--help", "-h"} {
			var stdout, stderr bytes.Buffer
			if code := run(append(args, h), nil, &stdout, &stderr); code != 0 || stderr.Len() > 0 {
				t.Errorf("postern %s %s: exit %d, stderr %q", cmd.Name, h, code, stderr.String())
			}
			out := stdout.String()
			flat := strings.Join(strings.Fields(out), " ") // as if not wrapped
			if cmd.Group() {
				for _, sub := range p.Subcommands(cmd) {
					if !sub.Group() && (!strings.Contains(out, "\n  "+sub.Name+" ") || !strings.Contains(flat, sub.Summary)) {
						t.Errorf("postern %s %s does not list %q:\n%s", cmd.Name, h, sub.Name, out)
					}
				}
				continue
			}
			if !strings.HasPrefix(out, "Usage: postern "+cmd.Name) || !strings.Contains(flat, cmdline.Sentence(cmd.Summary)) ||
				!strings.Contains(out, "\nExample:\n") || len(cmd.Examples) == 0 {
				t.Errorf("postern %s %s: no synopsis, summary or example:\n%s", cmd.Name, h, out)
			}
			fs := p.Flags(cmd)
			fs.VisitAll(func(f *flag.Flag) {
				want := "--" + f.Name + " "
				if cmdline.IsBoolFlag(f) { // no value
					want = "[--" + f.Name + "]"
				}
				if !strings.Contains(out, "\n  --"+f.Name+" ") || !strings.Contains(strings.SplitN(out, "\n", 2)[0], want) {
					t.Errorf("postern %s %s does not describe --%s in its synopsis and flags:\n%s", cmd.Name, h, f.Name, out)
				}
			})
			if h == "--help" {
				var viaHelp bytes.Buffer
				if code := run(append([]string{"help"}, args...), nil, &viaHelp, &stderr); code != 0 || viaHelp.String() != out {
					t.Errorf("postern help %s: exit %d, differs from --help:\n%s", cmd.Name, code, viaHelp.String())
				}
			}
		}
	}
}

// TestUsageMistakes: an unknown command or subcommand is named, a group
// without a command lists its commands, a bad flag is named in the
// --flag style; all on stderr with exit status 64.
func TestUsageMistakes(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{}, []string{"Usage: postern COMMAND", "no command given"}},
		{[]string{"frob"}, []string{`unknown command "frob"`, "postern --help"}},
		{[]string{"user", "frob"}, []string{`user: unknown command "frob"`, "Run 'postern user --help'"}},
		{[]string{"user"}, []string{"Usage: postern user COMMAND", "user add ", "user sendas list", "user: missing command"}},
		{[]string{"queue", "list", "--bogus"}, []string{"queue list: flag provided but not defined: --bogus", "Run 'postern queue list --help'"}},
		{[]string{"queue", "show"}, []string{"queue show: missing ID"}},
		{[]string{"queue", "show", "a", "b"}, []string{`queue show: unexpected argument "b"`}},
		{[]string{"queue", "retry"}, []string{"queue retry: name the messages"}},
		{[]string{"user", "alias", "add", "a@x"}, []string{"user alias add: want ALIAS TARGET..., got 1 argument(s)"}},
		{[]string{"ban", "add", "192.0.2.1", "--for", "2days"}, []string{`invalid value "2days" for flag --for`}},
	} {
		var stdout, stderr bytes.Buffer
		code := run(tc.args, nil, &stdout, &stderr)
		if code != exitUsage || stdout.Len() > 0 {
			t.Errorf("%q: exit %d, stdout %q", tc.args, code, stdout.String())
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr.String(), w) {
				t.Errorf("%q: stderr lacks %q:\n%s", tc.args, w, stderr.String())
			}
		}
	}
}

// TestTopUsage: --help lists every command with its summary, on stdout,
// and points to the commands' help and the manual page, not to a file an
// installed binary does not have.
func TestTopUsage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--help"}, nil, &stdout, &stderr); code != 0 || stderr.Len() > 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	out := stdout.String()
	for _, cmd := range commands() {
		if !cmd.Group() && !strings.Contains(out, "  "+cmd.Name+" ") {
			t.Errorf("usage lacks %q", cmd.Name)
		}
	}
	for _, bad := range []string{"README", "bench", "-config"} {
		if strings.Contains(strings.ReplaceAll(out, "--config", ""), bad) {
			t.Errorf("usage mentions %q:\n%s", bad, out)
		}
	}
	if !strings.Contains(out, "postern(8)") || !strings.Contains(out, "$POSTERN_CONFIG") {
		t.Errorf("usage:\n%s", out)
	}
}

// TestConfigSearch: every command finds its configuration the same way:
// --config, else $POSTERN_CONFIG, else the system's file if it exists,
// else the embedded default, which it then says on stderr.
func TestConfigSearch(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("hostname = \"mail.example.com\"\nlocal_domains = [\"example.com\"]\ndata_dir = \""+data+"\"\n[tls]\nself_signed = true\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	flagFile, envFile, sysFile := write("flag.toml", "flag"), write("env.toml", "env"), write("sys.toml", "sys")
	missing := filepath.Join(dir, "missing.toml")
	for _, tc := range []struct {
		name              string
		config, data, env string
		sys               string
		wantData          string // "" for an error
		wantErr           string
		notice            bool
	}{
		{name: "--config first", config: flagFile, env: envFile, sys: sysFile, wantData: filepath.Join(dir, "flag")},
		{name: "$POSTERN_CONFIG next", env: envFile, sys: sysFile, wantData: filepath.Join(dir, "env")},
		{name: "the system's file next", sys: sysFile, wantData: filepath.Join(dir, "sys")},
		{name: "the embedded default last, said", sys: missing, wantData: devDataDir, notice: true},
		{name: "--data chooses the embedded default", data: "d", env: envFile, sys: sysFile, wantData: "d"},
		{name: "$POSTERN_CONFIG naming no file", env: missing, sys: sysFile, wantErr: "$POSTERN_CONFIG names " + missing},
		{name: "a system's file that cannot be read", sys: "/etc/passwd/postern.toml", wantErr: "not a directory"},
		{name: "--config and --data", config: flagFile, data: "d", wantErr: "exclude each other"},
	} {
		var stderr bytes.Buffer
		c := testCLI(nil, io.Discard, &stderr, nil)
		c.getenv = func(k string) string {
			if k == configEnv {
				return tc.env
			}
			return ""
		}
		c.systemConfig = tc.sys
		cf := &configFlags{config: tc.config, data: tc.data, c: c}
		cfg, err := cf.load()
		switch {
		case tc.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: %v, want %q", tc.name, err, tc.wantErr)
			}
		case err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case cfg.DataDir != tc.wantData:
			t.Errorf("%s: data %s, want %s", tc.name, cfg.DataDir, tc.wantData)
		}
		if notice := strings.Contains(stderr.String(), "using the embedded default"); notice != tc.notice {
			t.Errorf("%s: stderr %q", tc.name, stderr.String())
		}
	}
}

// TestReadOnlyCommandsCreateNothing: user list on a data directory that
// does not exist says so, exit 1, and creates nothing; with the
// directory but no users file, it lists no one and creates nothing.
func TestReadOnlyCommandsCreateNothing(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"user", "list", "--data", data}, nil, &stdout, &stderr); code != 1 ||
		!strings.Contains(stderr.String(), "user: data directory: stat "+data+": no such file or directory") {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
	if _, err := os.Stat(data); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("user list made %s: %v", data, err)
	}
	os.Mkdir(data, 0o700)
	stderr.Reset()
	if code := run([]string{"user", "list", "--data", data}, nil, &stdout, &stderr); code != 0 || stdout.Len() > 0 {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
	if ents, _ := os.ReadDir(data); len(ents) > 0 {
		t.Errorf("user list made %s in the data directory", ents[0].Name())
	}
}

// TestManPage: help --man is a manual page groff reads without a
// warning, with every command's synopsis, flags and examples.
func TestManPage(t *testing.T) {
	groff, err := exec.LookPath("groff")
	if err != nil {
		if os.Getenv("POSTERN_INTEGRATION") != "" {
			t.Fatalf("groff is required (scripts/test installs groff-base): %v", err)
		}
		t.Skip("groff not installed")
	}
	var page, stderr bytes.Buffer
	if code := run([]string{"help", "--man"}, nil, &page, &stderr); code != 0 || stderr.Len() > 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	cmd := exec.Command(groff, "-man", "-Tutf8", "-ww", "-rLL=200n") // wide lines: a synopsis stays on one
	cmd.Stdin = bytes.NewReader(page.Bytes())
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
	var out, warn bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &warn
	if err := cmd.Run(); err != nil || warn.Len() > 0 {
		t.Fatalf("groff: %v\n%s", err, warn.String())
	}
	// Bold and italics are overstrikes: keep the characters.
	text := regexp.MustCompile(".\b").ReplaceAllString(out.String(), "")
	text = strings.NewReplacer("‐\n", "", "‐", "-", "−", "-").Replace(text)
	for _, sec := range []string{"NAME", "SYNOPSIS", "DESCRIPTION", "CONFIGURATION", "COMMANDS", "SIGNALS", "FILES", "ENVIRONMENT", "EXIT STATUS", "SEE ALSO"} {
		if !strings.Contains(text, "\n"+sec+"\n") {
			t.Errorf("no section %s", sec)
		}
	}
	p := testCLI(nil, nil, nil, nil).program()
	for _, cmd := range p.Commands {
		if cmd.Group() {
			continue
		}
		docs := p.FlagDocs(cmd, p.Flags(cmd))
		if syn := "postern " + p.Synopsis(cmd, docs); !strings.Contains(text, syn) {
			t.Errorf("no synopsis %q", syn)
		}
		for _, d := range docs {
			if !strings.Contains(text, d.Name) {
				t.Errorf("%s: no flag %q", cmd.Name, d.Name)
			}
		}
		for _, e := range cmd.Examples {
			if !strings.Contains(text, e) {
				t.Errorf("%s: no example %q", cmd.Name, e)
			}
		}
	}
	if t.Failed() {
		t.Logf("rendered:\n%s", text)
	}
}
