package config

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// docFiles are the documents whose configuration examples and key names
// are checked: the README and docs/*.md.
func docFiles(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, "../../README.md")
	out := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimPrefix(f, "../../")] = string(b)
	}
	return out
}

// TestDocumentedExamples: every TOML example in the README and the docs
// is TOML, and names no key the loader does not know. (Examples are
// fragments: what else the loader says of them, a missing hostname, is
// not checked.)
func TestDocumentedExamples(t *testing.T) {
	blocks := 0
	for name, text := range docFiles(t) {
		lines := strings.Split(text, "\n")
		for i := 0; i < len(lines); i++ {
			if strings.TrimSpace(lines[i]) != "```toml" {
				continue
			}
			start := i + 1
			var b strings.Builder
			for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
				b.WriteString(lines[i] + "\n")
			}
			blocks++
			var tree map[string]any
			if _, err := toml.Decode(b.String(), &tree); err != nil {
				t.Errorf("%s:%d: the example is not TOML: %v", name, start, err)
				continue
			}
			_, err := parse("postern.toml", []byte(b.String()), fixedHost)
			if err == nil {
				continue
			}
			for _, l := range strings.Split(err.Error(), "\n") {
				if strings.Contains(l, "unknown key") {
					t.Errorf("%s:%d: the example: %s", name, start, strings.TrimSpace(l))
				}
			}
		}
	}
	if blocks < 20 {
		t.Errorf("only %d TOML examples found: is the scan broken?", blocks)
	}
}

// docMentionNotKeys are names in the docs that look like keys and are
// not: a misspelling shown as one, a placeholder, a file name.
var docMentionNotKeys = map[string]bool{
	"listener.adress": true, // configuration.md: what an unknown key looks like
	"table":           true, // configuration.md: "[table]", any table
	"srs.secret":      true, // operations.md: the file DATA/srs.secret
}

var (
	docMentionDotted = regexp.MustCompile("`([a-z][a-z0-9_]*)\\.([a-z][a-z0-9_]*)`")
	docMentionTable  = regexp.MustCompile("`\\[\\[?([a-z][a-z0-9_.]*)\\]\\]?(?: ([a-z][a-z0-9_]*))?(?: = [^`]*)?`")
)

// TestDocumentedKeyMentions: a key named in prose, as `limits.max_recipients`
// or `[admin] http_address`, and a table named as `[send_limits]`, is one
// the loader knows.
func TestDocumentedKeyMentions(t *testing.T) {
	known := map[string]bool{}
	tables := map[string]bool{}
	for k := range everyKey(t, nil) {
		parts := strings.Split(anyName(k), ".")
		for i := range parts {
			known[strings.Join(parts[:i+1], ".")] = true
		}
		tables[parts[0]] = true
	}
	checked := 0
	for name, text := range docFiles(t) {
		for i, line := range strings.Split(text, "\n") {
			for _, m := range docMentionTable.FindAllStringSubmatch(line, -1) {
				k := m[1]
				if m[2] != "" {
					k += "." + m[2]
				}
				checked++
				if !known[k] && !docMentionNotKeys[k] {
					t.Errorf("%s:%d: %s names %s, which the loader does not know", name, i+1, m[0], k)
				}
			}
			for _, m := range docMentionDotted.FindAllStringSubmatch(line, -1) {
				if !tables[m[1]] || strings.Contains("md toml json pem go txt sock db", m[2]) && len(m[2]) <= 4 {
					continue // a file name or a Go name, not a key
				}
				checked++
				if k := m[1] + "." + m[2]; !known[k] && !docMentionNotKeys[k] {
					t.Errorf("%s:%d: %s names %s, which the loader does not know", name, i+1, m[0], k)
				}
			}
		}
	}
	if checked < 50 {
		t.Errorf("only %d key mentions found: is the scan broken?", checked)
	}
}
