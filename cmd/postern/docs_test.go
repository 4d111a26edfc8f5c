package main

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	cmdline "postern/internal/cli"
	"postern/internal/sendmail"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestDocumentedCommands: every postern command line in the README and
// docs/*.md (in code blocks and in inline code) names a command of the
// command table, with flags that command knows. Positional arguments are
// not counted (the docs write ID, EMAIL, ...), nor flag values checked.
func TestDocumentedCommands(t *testing.T) {
	files, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, "../../README.md")
	checked := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(f, "../../")
		for _, cl := range docCommandLines(string(b)) {
			checked++
			if msg := checkCommandLine(cl.args); msg != "" {
				t.Errorf("%s:%d: postern %s: %s", name, cl.line, strings.Join(cl.args, " "), msg)
			}
		}
	}
	if checked < 50 {
		t.Errorf("only %d command lines found in the docs: is the scan broken?", checked)
	}
}

// TestCheckCommandLine: the checker refuses what the docs must not say.
func TestCheckCommandLine(t *testing.T) {
	for _, tc := range []struct {
		line string
		ok   bool
	}{
		{"postern user add alice@example.com --data postern-data", true},
		{"sudo -u postern postern queue list --config /etc/postern/postern.toml", true},
		{"go run ./cmd/postern serve", true},
		{"printf 'x' | postern sendmail -t -i", true},
		{"postern help user add", true},
		{"postern user frob alice@example.com", false},
		{"postern user add --no-such-flag alice@example.com", false},
		{"postern frob", false},
		{"postern dkim keygen DOMAIN [--selectr S]", false},
		{"docker exec postern postern usr add alice@example.com", false},
		{"postern sendmail -Z", false},
	} {
		cls := docCommandLines("```sh\n" + tc.line + "\n```\n")
		if len(cls) != 1 {
			t.Errorf("%q: found %d command lines, want 1", tc.line, len(cls))
			continue
		}
		msg := checkCommandLine(cls[0].args)
		if (msg == "") != tc.ok {
			t.Errorf("%q: ok %v, want %v (%s)", tc.line, msg == "", tc.ok, msg)
		}
	}
}

// TestDocCommandLinesTranscript: in a block with a prompt, the output
// lines are not commands, even when they name one.
func TestDocCommandLinesTranscript(t *testing.T) {
	cls := docCommandLines("```text\n$ postern queue hold --domain example.org\nHeld 3 messages: nothing is tried until postern queue release.\n```\n")
	if len(cls) != 1 || strings.Join(cls[0].args, " ") != "queue hold --domain example.org" {
		t.Errorf("got %+v, want the one prompted command", cls)
	}
}

// checkCommandLine returns what is wrong with the arguments after
// "postern", or "".
func checkCommandLine(args []string) string {
	if len(args) == 0 {
		return ""
	}
	switch args[0] {
	case "-h", "-help", "--help", "-version", "--version":
		return ""
	case "help":
		args = args[1:]
		if len(args) == 0 || args[0] == "--man" {
			return ""
		}
	}
	cmd, rest := cmdline.Lookup(commands(), args)
	switch {
	case cmd == nil:
		return "no such command"
	case cmd.Raw != nil:
		if _, err := sendmail.ParseArgs(rest); err != nil {
			return err.Error()
		}
		return ""
	case cmd.Group():
		if len(rest) == 0 || cmdline.IsHelp(rest[0]) || rest[0] == "..." {
			return ""
		}
		return "no such command " + cmd.Name + " " + rest[0]
	}
	fs := flag.NewFlagSet(cmd.Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cmd.Setup(newCLI(strings.NewReader(""), io.Discard, io.Discard), fs)
	if _, err := cmdline.ParseArgs(fs, rest); err != nil && !errors.Is(err, flag.ErrHelp) {
		// A placeholder where a number goes (--limit N) is not a mistake.
		if !strings.Contains(err.Error(), "invalid value") {
			return cmdline.FlagError(err)
		}
	}
	return ""
}

// docCommandLine is a postern command line found in a document.
type docCommandLine struct {
	line int
	args []string // after "postern"
}

var docInline = regexp.MustCompile("`([^`\n]+)`")

// docCommandLines finds the postern command lines of a Markdown text: in
// fenced code blocks (continued lines joined) and in inline code.
func docCommandLines(text string) []docCommandLine {
	var out []docCommandLine
	lines := strings.Split(text, "\n")
	inBlock, lang, transcript := false, "", false
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if fence := strings.TrimSpace(line); strings.HasPrefix(fence, "```") {
			inBlock = !inBlock
			lang = strings.TrimPrefix(fence, "```")
			transcript = inBlock && isTranscript(lines[i+1:])
			continue
		}
		if inBlock {
			if lang == "toml" || lang == "json" || lang == "yaml" {
				continue
			}
			// In a transcript ("$ postern ..." then its output) only
			// the prompted lines are commands.
			if transcript {
				if !strings.HasPrefix(line, "$ ") {
					continue
				}
				line = line[2:]
			}
			start := i + 1
			for strings.HasSuffix(line, "\\") && i+1 < len(lines) {
				i++
				line = strings.TrimSuffix(line, "\\") + " " + lines[i]
			}
			for _, args := range shellCommands(line) {
				out = append(out, docCommandLine{start, args})
			}
			continue
		}
		for _, m := range docInline.FindAllStringSubmatch(line, -1) {
			for _, args := range shellCommands(m[1]) {
				// Inline code is also log messages (`postern ready`):
				// only a known command, or a flag, starts a command line.
				if cmd, _ := cmdline.Lookup(commands(), args[:1]); cmd != nil || args[0][0] == '-' || args[0] == "help" {
					out = append(out, docCommandLine{i + 1, args})
				}
			}
		}
	}
	return out
}

// shellCommands splits a shell line into words (quotes kept together,
// comments dropped) and returns the arguments after each word that runs
// postern: "postern", "./postern", "/usr/bin/postern", "./cmd/postern",
// not an argument of an option ("sudo -u postern", "-o postern").
func shellCommands(line string) [][]string {
	var out [][]string
	words := shellWords(line)
	for i := 0; i < len(words); i++ {
		w := words[i]
		if w != "postern" && w != "./postern" && w != "./cmd/postern" && !strings.HasSuffix(w, "/bin/postern") {
			continue
		}
		if i > 0 && strings.HasPrefix(words[i-1], "-") && words[i-1] != "--" {
			continue
		}
		if i > 0 && (words[i-1] == "build" || strings.HasSuffix(words[i-1], "=")) {
			continue
		}
		j := i + 1
		for j < len(words) && !shellSeparator(words[j]) {
			j++
		}
		if j == i+1 {
			continue // a name, not a command line: "the user postern"
		}
		var args []string
		for _, a := range words[i+1 : j] {
			// A usage line's optional parts: "[--selector S]".
			args = append(args, strings.TrimSuffix(strings.TrimPrefix(a, "["), "]"))
		}
		if args[0] == "postern" {
			continue // "docker exec postern postern user add": the container's name
		}
		// A command starts with a lower-case word or a flag; anything
		// else ("postern.toml", "Postern's") is prose.
		if c := args[0][0]; !(c >= 'a' && c <= 'z' || c == '-') {
			continue
		}
		out = append(out, args)
		i = j
	}
	return out
}

func shellSeparator(w string) bool {
	switch w {
	case "|", "||", "&&", ";", "&", ">", ">>", "<", "2>", "2>&1", ")":
		return true
	}
	return strings.HasPrefix(w, ">") || strings.HasPrefix(w, "2>")
}

// shellWords splits a line as the shell would, roughly: quotes and $(...)
// keep their content in one word, # starts a comment, and |, ;, && and
// redirections are words of their own.
func shellWords(line string) []string {
	var words []string
	var cur strings.Builder
	inWord := false
	flush := func() {
		if inWord {
			words = append(words, cur.String())
			cur.Reset()
			inWord = false
		}
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '\'' || c == '"':
			j := strings.IndexByte(line[i+1:], c)
			if j < 0 {
				j = len(line) - i - 1
			}
			cur.WriteString(line[i+1 : i+1+j])
			inWord = true
			i += j + 1
		case c == '$' && i+1 < len(line) && line[i+1] == '(':
			depth, j := 0, i+1
			for ; j < len(line); j++ {
				if line[j] == '(' {
					depth++
				} else if line[j] == ')' {
					if depth--; depth == 0 {
						break
					}
				}
			}
			cur.WriteString(line[i:min(j+1, len(line))])
			inWord = true
			i = j
		case c == '#' && !inWord:
			flush()
			return words
		case c == ' ' || c == '\t':
			flush()
		case c == '|' || c == ';' || c == '&' || c == '>' || c == '<' || c == '(' || c == ')':
			flush()
			j := i + 1
			for j < len(line) && (line[j] == c || line[j] == '&' && c == '>') {
				j++
			}
			words = append(words, line[i:j])
			i = j - 1
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	flush()
	return words
}

// TestDocumentLinks: every relative link of the README and docs/*.md
// reaches a file of the repository, and its #anchor a heading there;
// every file of the repository they name (scripts/soak,
// internal/tlsconf/check_test.go) exists; and
// no document points into the development workspace around the
// repository ("../shared/..."), which an operator's checkout lacks, but
// for the benchmark kit that scripts/bench-* take as BENCH
// (../shared/bench by default), which docs/performance.md names.
func TestDocumentLinks(t *testing.T) {
	files, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, "../../README.md")
	anchors := map[string]map[string]bool{}
	anchorsOf := func(path string) map[string]bool {
		if a, ok := anchors[path]; ok {
			return a
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		anchors[path] = markdownAnchors(string(b))
		return anchors[path]
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(f, "../../")
		for i, line := range strings.Split(string(b), "\n") {
			for _, m := range docLink.FindAllStringSubmatch(line, -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				path, anchor, _ := strings.Cut(target, "#")
				full := f
				if path != "" {
					full = filepath.Join(filepath.Dir(f), path)
				}
				if _, err := os.Stat(full); err != nil {
					t.Errorf("%s:%d: link to %s: no such file in the repository", name, i+1, target)
					continue
				}
				if anchor != "" && strings.HasSuffix(full, ".md") && !anchorsOf(full)[anchor] {
					t.Errorf("%s:%d: link to %s: no heading with that anchor", name, i+1, target)
				}
			}
			for _, m := range docRepoPath.FindAllStringSubmatch(line, -1) {
				if _, err := os.Stat(filepath.Join("../..", m[1])); err != nil {
					t.Errorf("%s:%d: names %s, which the repository does not have", name, i+1, m[1])
				}
			}
			if strings.Contains(strings.ReplaceAll(line, "../shared/bench", ""), "../shared/") {
				t.Errorf("%s:%d: points outside the repository (../shared/)", name, i+1)
			}
		}
	}
}

var (
	docLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	// docRepoPath is a path into the repository's own folders, as the
	// docs name files: scripts/test, ./cmd/postern, internal/spool/.
	docRepoPath = regexp.MustCompile("(?:^|[\\s`(\\[])(?:\\./)?((?:scripts|contrib|cmd|internal|test|docs)/[A-Za-z0-9_./-]*[A-Za-z0-9_])")
)

// markdownAnchors returns the anchors GitHub makes of a document's
// headings: lower case, spaces to hyphens, punctuation dropped, a
// repeated heading numbered (-1, -2).
func markdownAnchors(text string) map[string]bool {
	out := map[string]bool{}
	inBlock := false
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inBlock = !inBlock
			continue
		}
		if inBlock || !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(h) {
			switch {
			case r == ' ':
				b.WriteByte('-')
			case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127:
				b.WriteRune(r)
			}
		}
		a := b.String()
		for n := 1; out[a]; n++ {
			a = b.String() + "-" + strconv.Itoa(n)
		}
		out[a] = true
	}
	return out
}

// isTranscript reports whether the code block whose lines start at
// lines (up to its closing fence) shows a shell prompt, "$ ".
func isTranscript(lines []string) bool {
	for _, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			return false
		}
		if strings.HasPrefix(l, "$ ") {
			return true
		}
	}
	return false
}
