package test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// This file reads contrib/Dockerfile and carries out its instructions
// without Docker, for TestImage: the build stage's RUN commands on this
// machine (the build context is the repository, the stage's /out a
// temporary directory, every other path the host's own), and the final
// stage's COPY lines into a directory that stands for the image's root.
// Only the instructions and shell forms the Dockerfile uses are
// understood; anything else fails the test, so that a change to the
// Dockerfile cannot go unseen by it.

// dockerInstr is one instruction, its continuation lines joined.
type dockerInstr struct {
	line int    // where it starts in the Dockerfile
	cmd  string // COPY, RUN, ... in upper case
	args string
}

// dockerStage is a FROM and the instructions that follow it.
type dockerStage struct {
	from, name string
	instrs     []dockerInstr
}

// parseDockerfile splits a Dockerfile into its stages.
func parseDockerfile(t *testing.T, file string) []*dockerStage {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var stages []*dockerStage
	var cur *dockerInstr
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if cur == nil {
			cmd, args, _ := strings.Cut(trimmed, " ")
			cur = &dockerInstr{line: n, cmd: strings.ToUpper(cmd)}
			line = args
		}
		// A backslash at the end of a line continues the instruction on
		// the next; Docker removes it and the newline.
		if body, ok := strings.CutSuffix(strings.TrimRight(line, " \t"), `\`); ok {
			cur.args += body
			continue
		}
		cur.args = strings.TrimSpace(cur.args + line)
		if cur.cmd == "FROM" {
			// FROM image [AS name]
			w := strings.Fields(cur.args)
			st := &dockerStage{from: w[0]}
			if len(w) == 3 && strings.EqualFold(w[1], "AS") {
				st.name = w[2]
			} else if len(w) != 1 {
				t.Fatalf("Dockerfile:%d: FROM %s: not understood", cur.line, cur.args)
			}
			stages = append(stages, st)
		} else if len(stages) == 0 {
			t.Fatalf("Dockerfile:%d: %s before FROM", cur.line, cur.cmd)
		} else {
			st := stages[len(stages)-1]
			st.instrs = append(st.instrs, *cur)
		}
		cur = nil
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur != nil {
		t.Fatalf("Dockerfile:%d: instruction continued past the end of the file", cur.line)
	}
	if len(stages) < 2 {
		t.Fatalf("Dockerfile: want a build stage and a final stage, found %d stage(s)", len(stages))
	}
	return stages
}

// buildStage is a build stage carried out on this machine.
type buildStage struct {
	name    string
	repo    string // the build context, copied to the WORKDIR by COPY . .
	out     string // stands for the stage's /out
	workdir string
	args    map[string]string // the ARGs, with the test's --build-arg values
	binary  string            // the stage's path of the go build output
}

// path returns where the stage's path p is on this machine, and whether
// a RUN command may write there (only under /out).
func (b *buildStage) path(p string) (string, bool) {
	if !path.IsAbs(p) {
		p = path.Join(b.workdir, p)
	}
	p = path.Clean(p)
	switch {
	case p == "/out" || strings.HasPrefix(p, "/out/"):
		return filepath.Join(b.out, p), true
	case b.workdir != "/" && (p == b.workdir || strings.HasPrefix(p, b.workdir+"/")):
		return filepath.Join(b.repo, strings.TrimPrefix(p, b.workdir)), false
	default:
		// The base image's own files (the CA certificates, the zone
		// information): this machine's, a Debian like golang:1.26's.
		return p, false
	}
}

// runBuildStage carries out the build stage st with the build
// arguments buildArgs (docker build --build-arg).
func runBuildStage(t *testing.T, st *dockerStage, repo string, buildArgs map[string]string) *buildStage {
	t.Helper()
	b := &buildStage{name: st.name, repo: repo, out: t.TempDir(), workdir: "/", args: map[string]string{}}
	for _, in := range st.instrs {
		switch in.cmd {
		case "WORKDIR":
			b.workdir = path.Clean(in.args)
		case "ARG":
			name, def, _ := strings.Cut(in.args, "=")
			b.args[name] = def
			if v, ok := buildArgs[name]; ok {
				b.args[name] = v
			}
		case "COPY":
			// The build context into the WORKDIR: path maps it there.
			w := strings.Fields(in.args)
			if dst := w[len(w)-1]; strings.HasPrefix(w[0], "--") || (dst != "." && dst != "./") {
				t.Fatalf("Dockerfile:%d: COPY %s: only copies of the build context into the WORKDIR are emulated in the build stage", in.line, in.args)
			}
		case "RUN":
			cmds, err := parseShell(in.args, b.args)
			if err != nil {
				t.Fatalf("Dockerfile:%d: RUN: %v", in.line, err)
			}
			for _, c := range cmds {
				b.run(t, in.line, c)
			}
		default:
			t.Fatalf("Dockerfile:%d: %s in the build stage is not emulated by TestImage: teach it", in.line, in.cmd)
		}
	}
	for name := range buildArgs {
		if _, ok := b.args[name]; !ok {
			t.Fatalf("Dockerfile: the build stage has no ARG %s", name)
		}
	}
	if b.binary == "" {
		t.Fatal("Dockerfile: the build stage runs no go build")
	}
	return b
}

// run carries out one command of a RUN line.
func (b *buildStage) run(t *testing.T, line int, c shellCmd) {
	t.Helper()
	args, env := c.args, []string(nil)
	for len(args) > 0 && strings.Contains(args[0], "=") && !strings.HasPrefix(args[0], "-") {
		env, args = append(env, args[0]), args[1:]
	}
	if len(args) == 0 {
		t.Fatalf("Dockerfile:%d: RUN: an empty command", line)
	}
	writable := func(p string) string {
		host, ok := b.path(p)
		if !ok {
			t.Fatalf("Dockerfile:%d: RUN writes %s: TestImage emulates writes under /out only", line, p)
		}
		return host
	}
	cmdline := strings.Join(c.args, " ")
	switch {
	case cmdline == "go mod download":
		// The module cache serves go build here.
	case len(args) > 2 && args[0] == "go" && args[1] == "build" && c.out == "":
		goArgs := slices.Clone(args[1:])
		for i := 0; i < len(goArgs)-1; i++ {
			if goArgs[i] == "-o" {
				b.binary = goArgs[i+1]
				goArgs[i+1] = writable(goArgs[i+1])
			}
		}
		if b.binary == "" {
			t.Fatalf("Dockerfile:%d: go build without -o", line)
		}
		cmd := exec.Command("go", goArgs...)
		cmd.Dir, _ = b.path(b.workdir)
		cmd.Env = append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("Dockerfile:%d: %s: %v\n%s", line, cmdline, err, out)
		}
	case args[0] == "mkdir" && len(args) > 2 && args[1] == "-p" && env == nil && c.out == "":
		for _, d := range args[2:] {
			if err := os.MkdirAll(writable(d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	case args[0] == "echo" && env == nil && c.out != "":
		if err := os.WriteFile(writable(c.out), []byte(strings.Join(args[1:], " ")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("Dockerfile:%d: RUN %s: not emulated by TestImage: teach it", line, cmdline)
	}
}

// shellCmd is one simple command of a RUN line: its words and the file
// its standard output is redirected to ("" when none).
type shellCmd struct {
	args []string
	out  string
}

// parseShell splits a RUN line as sh would, for the forms the
// Dockerfile uses: words separated by blanks, '...' and "...", $NAME
// and ${NAME} from vars, commands joined by &&, and > FILE. Anything
// else is an error rather than a guess.
func parseShell(s string, vars map[string]string) ([]shellCmd, error) {
	var (
		cmds     []shellCmd
		cur      shellCmd
		word     strings.Builder
		inWord   bool
		redirect bool
	)
	flush := func() {
		if !inWord {
			return
		}
		if redirect {
			cur.out, redirect = word.String(), false
		} else {
			cur.args = append(cur.args, word.String())
		}
		word.Reset()
		inWord = false
	}
	// expand writes the value of the variable at s[i] ('$') and returns
	// the index of its last byte.
	expand := func(i int) (int, error) {
		rest, braces := s[i+1:], strings.HasPrefix(s[i+1:], "{")
		if braces {
			rest = rest[1:]
		}
		n := 0
		for n < len(rest) && (rest[n] == '_' || 'A' <= rest[n] && rest[n] <= 'Z' || 'a' <= rest[n] && rest[n] <= 'z' || n > 0 && '0' <= rest[n] && rest[n] <= '9') {
			n++
		}
		name := rest[:n]
		if name == "" || braces && !strings.HasPrefix(rest[n:], "}") {
			return 0, fmt.Errorf("a $ expansion other than $NAME or ${NAME} at %q", s[i:])
		}
		v, ok := vars[name]
		if !ok {
			return 0, fmt.Errorf("$%s is not an ARG of the stage", name)
		}
		word.WriteString(v)
		inWord = true
		if braces {
			return i + 1 + 1 + n, nil
		}
		return i + n, nil
	}
	for i := 0; i < len(s); i++ {
		var err error
		switch c := s[i]; {
		case c == ' ' || c == '\t':
			flush()
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated ' in %q", s)
			}
			word.WriteString(s[i+1 : i+1+j])
			inWord = true
			i += j + 1
		case c == '"':
			inWord = true
			for i++; i < len(s) && s[i] != '"'; i++ {
				switch s[i] {
				case '$':
					i, err = expand(i)
				case '\\', '`':
					err = fmt.Errorf("%q inside \"...\" is not emulated", s[i])
				default:
					word.WriteByte(s[i])
				}
				if err != nil {
					return nil, err
				}
			}
			if i >= len(s) {
				return nil, fmt.Errorf("unterminated \" in %q", s)
			}
		case c == '$':
			if i, err = expand(i); err != nil {
				return nil, err
			}
		case c == '&' && strings.HasPrefix(s[i:], "&&"):
			flush()
			if redirect || len(cur.args) == 0 {
				return nil, fmt.Errorf("an empty command before && in %q", s)
			}
			cmds, cur = append(cmds, cur), shellCmd{}
			i++
		case c == '>' && !strings.HasPrefix(s[i:], ">>"):
			flush()
			if redirect || cur.out != "" {
				return nil, fmt.Errorf("two redirections in %q", s)
			}
			redirect = true
		case strings.IndexByte("\\;|&<>`(){}*?[]~#", c) >= 0:
			return nil, fmt.Errorf("%q is not emulated (at %q)", c, s[i:])
		default:
			word.WriteByte(c)
			inWord = true
		}
	}
	flush()
	if redirect || len(cur.args) == 0 {
		return nil, fmt.Errorf("a command or redirection left empty in %q", s)
	}
	return append(cmds, cur), nil
}

// image is the final stage: its root file system, assembled on this
// machine, and how Docker runs it.
type image struct {
	root       string
	user       string // USER
	volumes    []string
	entrypoint []string
	cmd        []string

	// Set by resolveUser: the USER's ids, and the environment Docker
	// gives the container.
	uid, gid uint32
	env      []string
}

// assembleImage carries out the final stage st into a new root, taking
// COPY --from sources from the build stage b.
func assembleImage(t *testing.T, st *dockerStage, b *buildStage) *image {
	t.Helper()
	if st.from != "scratch" {
		t.Fatalf("Dockerfile: the final stage is FROM %s: TestImage assembles a FROM scratch image only", st.from)
	}
	im := &image{root: t.TempDir()}
	// Docker's root directory is 0755; t.TempDir's 0700 would keep the
	// unprivileged USER out.
	if err := os.Chmod(im.root, 0o755); err != nil {
		t.Fatal(err)
	}
	execForm := func(in dockerInstr) []string {
		var v []string
		if err := json.Unmarshal([]byte(in.args), &v); err != nil || len(v) == 0 {
			t.Fatalf("Dockerfile:%d: %s %s: want the exec (JSON) form", in.line, in.cmd, in.args)
		}
		return v
	}
	for _, in := range st.instrs {
		switch in.cmd {
		case "COPY":
			im.copy(t, in, b)
		case "USER":
			im.user = in.args
		case "VOLUME":
			if strings.HasPrefix(in.args, "[") {
				im.volumes = append(im.volumes, execForm(in)...)
			} else {
				im.volumes = append(im.volumes, strings.Fields(in.args)...)
			}
		case "EXPOSE":
			// Published by docker run -p; nothing in the image.
		case "ENTRYPOINT":
			im.entrypoint = execForm(in)
		case "CMD":
			im.cmd = execForm(in)
		default:
			t.Fatalf("Dockerfile:%d: %s in the final stage is not emulated by TestImage: teach it", in.line, in.cmd)
		}
	}
	if im.user == "" || len(im.entrypoint) == 0 {
		t.Fatal("Dockerfile: the final stage has no USER or no ENTRYPOINT")
	}
	return im
}

// copy carries out COPY --from=STAGE [--chown=UID:GID] [--chmod=MODE]
// SRC DST as BuildKit does: a file is copied to DST, a directory's
// contents into DST; files keep their mode unless --chmod, and belong to
// 0:0 unless --chown, which (with --chmod) also applies to DST itself
// when SRC is a directory. Parent directories are made root's, 0755.
func (im *image) copy(t *testing.T, in dockerInstr, b *buildStage) {
	t.Helper()
	w := strings.Fields(in.args)
	var from string
	uid, gid, mode := 0, 0, fs.FileMode(0)
	for len(w) > 0 && strings.HasPrefix(w[0], "--") {
		flag, val, _ := strings.Cut(w[0], "=")
		var err error
		switch flag {
		case "--from":
			from = val
		case "--chown":
			u, g, ok := strings.Cut(val, ":")
			if uid, err = strconv.Atoi(u); err == nil && ok {
				gid, err = strconv.Atoi(g)
			} else if err == nil {
				err = fmt.Errorf("no group")
			}
		case "--chmod":
			var m uint64
			m, err = strconv.ParseUint(val, 8, 32)
			mode = fs.FileMode(m)
		default:
			err = fmt.Errorf("not emulated")
		}
		if err != nil {
			t.Fatalf("Dockerfile:%d: COPY %s: %v (TestImage takes numeric --chown=UID:GID and octal --chmod)", in.line, w[0], err)
		}
		w = w[1:]
	}
	if from != b.name || len(w) != 2 {
		t.Fatalf("Dockerfile:%d: COPY %s: TestImage emulates COPY --from=%s SRC DST only", in.line, in.args, b.name)
	}
	src, _ := b.path(w[0])
	dst := filepath.Join(im.root, w[1])
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	setMeta := func(p string, m fs.FileMode) {
		if mode != 0 {
			m = mode
		}
		if err := os.Lchown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, m); err != nil {
			t.Fatal(err)
		}
	}
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err == nil {
				err = os.Symlink(l, target)
			}
			if err == nil {
				err = os.Lchown(target, uid, gid)
			}
			return err
		case d.IsDir():
			if err := os.Mkdir(target, 0o700); err != nil && !os.IsExist(err) {
				return err
			}
			if rel == "." {
				setMeta(target, 0o755) // DST itself: not SRC's mode
			} else {
				setMeta(target, fi.Mode().Perm())
			}
		case d.Type().IsRegular():
			if err := copyFile(p, target); err != nil {
				return err
			}
			setMeta(target, fi.Mode().Perm())
		default:
			return fmt.Errorf("%s: a %v is not emulated", p, d.Type())
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Dockerfile:%d: COPY %s: %v", in.line, in.args, err)
	}
}

// copyFile copies the contents of a regular file.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
