package test

// The command line as an administrator meets it: every command finds
// the live server's configuration the same way, read-only commands
// create nothing, every command has a usage, and the load generator is
// a tool of its own.

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCommandsFindTheServer: serve, user, queue, ban, reload and check
// take the configuration from $POSTERN_CONFIG, and else from the
// system's file (/etc/postern/postern.toml, here the file TestMain built
// the binary to read), as they do from --config: `queue list` finds the
// running server.
func TestCommandsFindTheServer(t *testing.T) {
	integration(t)
	s := testConfig(t, t.TempDir(), "")
	env := []string{"POSTERN_CONFIG=" + s.config}
	s.startCmd(func(cmd *exec.Cmd) {
		cmd.Args = []string{binPath, "serve"} // no flag: $POSTERN_CONFIG
		cmd.Env = append(os.Environ(), env...)
	})
	elsewhere := t.TempDir() // the commands run outside the data's directory
	if out, errs, code := command(t, elsewhere, env, "alice-secret-1\n", "user", "add", "alice@example.test"); code != 0 {
		t.Fatalf("user add: exit %d\n%s%s", code, out, errs)
	}
	for _, args := range [][]string{{"queue", "list"}, {"ban", "list"}, {"reload"}, {"user", "list"}} {
		out, errs, code := command(t, elsewhere, env, "", args...)
		if code != 0 || strings.Contains(errs, "embedded default") {
			t.Errorf("%q with $POSTERN_CONFIG: exit %d\n%s%s", args, code, out, errs)
		}
	}
	// The system's file, with nothing else to go by.
	if err := os.MkdirAll(filepath.Dir(systemConfig), 0o755); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(s.config)
	if err := os.WriteFile(systemConfig, b, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(systemConfig) })
	out, errs, code := command(t, elsewhere, nil, "", "queue", "list")
	if code != 0 || out != "The queue is empty.\n" || errs != "" {
		t.Errorf("queue list with the system's file: exit %d\n%s%s", code, out, errs)
	}
	if out, _, code := command(t, elsewhere, nil, "", "user", "list"); code != 0 || out != "alice@example.test\n" {
		t.Errorf("user list with the system's file: exit %d, %q", code, out)
	}
	if out, errs, code := command(t, elsewhere, nil, "", "check"); !strings.Contains(out, "config: "+systemConfig+" is valid") {
		t.Errorf("check with the system's file: exit %d\n%s%s", code, out, errs)
	}
	if entries, _ := os.ReadDir(elsewhere); len(entries) > 0 {
		t.Errorf("the commands made %s in the current directory", entries[0].Name())
	}
}

// TestReadOnlyCommandsCreateNothing: without any configuration, the
// commands that only read fall back to the embedded default, say so,
// and create no data directory.
func TestReadOnlyCommandsCreateNothing(t *testing.T) {
	integration(t)
	dir := t.TempDir()
	for _, args := range [][]string{{"user", "list"}, {"queue", "list"}, {"ban", "list"}, {"check"}} {
		out, errs, code := command(t, dir, nil, "", args...)
		if !strings.Contains(errs, "postern: no configuration file (no --config, no $POSTERN_CONFIG, no "+systemConfig+"): using the embedded default, with its data in ./postern-data") {
			t.Errorf("%q: no word of the embedded default: exit %d\n%s%s", args, code, out, errs)
		}
		if args[0] != "check" && code != 1 {
			t.Errorf("%q: exit %d, want 1\n%s%s", args, code, out, errs)
		}
		if _, err := os.Stat(filepath.Join(dir, "postern-data")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%q made the data directory: %v", args, err)
		}
	}
}

// TestHelpOfTheBinary: --help and -h print the usage on stdout and exit
// 0; an unknown subcommand is named; bench is no longer an
// administration command but a tool of its own.
func TestHelpOfTheBinary(t *testing.T) {
	integration(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--help"}, "Usage: postern COMMAND"},
		{[]string{"help"}, "Usage: postern COMMAND"},
		{[]string{"queue", "list", "--help"}, "Usage: postern queue list [--domain DOMAIN] [--from SENDER] [--json] [--state STATE] [--to ADDRESS] [--config FILE | --data DIR]\n\nList the messages waiting"},
		{[]string{"user", "--help"}, "Usage: postern user COMMAND"},
		{[]string{"user", "add", "-h"}, "Usage: postern user add EMAIL [--cram-md5] [--force] [--config FILE | --data DIR]"},
		{[]string{"ban", "add", "--help"}, "--for DURATION"},
		{[]string{"sendmail", "--help"}, "Usage: postern sendmail [-t]"},
	} {
		out, errs, code := command(t, dir, nil, "", tc.args...)
		if code != 0 || errs != "" || !strings.Contains(out, tc.want) || !strings.Contains(out, "postern") {
			t.Errorf("%q: exit %d, stdout lacks %q\n%s%s", tc.args, code, tc.want, out, errs)
		}
		if strings.Contains(out, "README") {
			t.Errorf("%q points to the README, which an installed binary does not have", tc.args)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"user", "frob"}, `postern: user: unknown command "frob"`},
		{[]string{"bench", "--addr", "127.0.0.1:25"}, `postern: unknown command "bench"`},
		{[]string{"queue", "list", "-bogus"}, "flag provided but not defined: --bogus"},
	} {
		out, errs, code := command(t, dir, nil, "", tc.args...)
		if code != 64 || out != "" || !strings.Contains(errs, tc.want) {
			t.Errorf("%q: exit %d, stderr lacks %q\n%s%s", tc.args, code, tc.want, out, errs)
		}
	}
	bench := filepath.Join(filepath.Dir(binPath), "postern-bench")
	if out, err := exec.Command("go", "build", "-o", bench, "../cmd/postern-bench").CombinedOutput(); err != nil {
		t.Fatalf("build postern-bench: %v\n%s", err, out)
	}
	out, err := exec.Command(bench, "--help").Output()
	if err != nil || !strings.HasPrefix(string(out), "Usage: postern-bench --addr HOST:PORT") {
		t.Errorf("postern-bench --help: %v\n%s", err, out)
	}
}
