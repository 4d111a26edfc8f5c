package config

import (
	"bufio"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestDocumentedKeys: docs/configuration.md documents every key the
// loader knows, and names no key it does not know. A key is documented
// by a row of a "| Key |" table under the heading of its table
// ("## `[limits]`", "## `[[listener]]`", or a line "... in
// `[[listener]]`:"), by a "### `name`" heading for a top-level key, or,
// for a key of an array of tables ("tls.certificate.cert_file"), by the
// row of that array, which names its keys in backticks.
func TestDocumentedKeys(t *testing.T) {
	known := map[string]bool{}
	for k := range everyKey(t, nil) {
		// A key's tables are known too (send_as."*" of send_as."*".domains).
		parts := strings.Split(anyName(k), ".")
		for i := range parts {
			known[strings.Join(parts[:i+1], ".")] = true
		}
	}
	rows := docRows(t, "../../docs/configuration.md")

	// The tables of documented keys are documented too (send_limits.users
	// of send_limits.users."*").
	tablesOf := map[string]bool{}
	for sect := range rows {
		parts := strings.Split(sect, ".")
		for i := range parts {
			tablesOf[strings.Join(parts[:i+1], ".")] = true
		}
	}
	documented := func(k string) bool {
		if tablesOf[k] {
			return true
		}
		parts := strings.Split(k, ".")
		for i := len(parts) - 1; i >= 0; i-- {
			sect, name := strings.Join(parts[:i], "."), parts[i]
			if i == len(parts)-1 {
				if _, ok := rows[sect][name]; ok {
					return true
				}
				continue
			}
			// parts[i] names an array of tables documented in one row of
			// sect, which mentions the rest of the key.
			if row, ok := rows[sect][name]; ok && strings.Contains(row, "`"+parts[len(parts)-1]+"`") {
				return true
			}
		}
		return false
	}
	for k := range known {
		if !documented(k) {
			t.Errorf("key %s is not documented in docs/configuration.md", k)
		}
	}
	for sect, names := range rows {
		for name := range names {
			k := name
			if sect != "" {
				k = sect + "." + name
			}
			if !known[k] {
				t.Errorf("docs/configuration.md documents %s, which the loader does not know", k)
			}
		}
	}
}

// anyName writes a key that the user names, quoted in a dotted key
// (send_as."alice@example.com".domains, send_as."USER".domains), as "*".
func anyName(k string) string { return docQuoted.ReplaceAllString(k, `"*"`) }

var (
	docQuoted  = regexp.MustCompile(`"[^"]*"`)
	docTable   = regexp.MustCompile("^#{2,3} .*`\\[\\[?([a-z0-9_.]+)\\]\\]?`")
	docTopKey  = regexp.MustCompile("^### `([a-z0-9_]+)`$")
	docSwitch  = regexp.MustCompile("in `\\[\\[?([a-z0-9_.]+)\\]\\]?`:$")
	docTick    = regexp.MustCompile("`([^`]+)`")
	docOtherIn = regexp.MustCompile("\\(in an? `\\[\\[?([a-z0-9_.]+)\\]\\]?`\\)")
)

// docRows reads the "| Key |" tables of the configuration reference:
// section -> key -> the whole row. Top-level keys are in section "".
func docRows(t *testing.T, path string) map[string]map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows := map[string]map[string]string{}
	tables := map[string]bool{}
	type entry struct{ sect, name, line string }
	var entries []entry
	add := func(sect, name, row string) {
		if rows[sect] == nil {
			rows[sect] = map[string]string{}
		}
		rows[sect][name] = row
	}
	sect, inKeyTable, topLevel := "", false, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "## "):
			topLevel = line == "## Top-level keys"
			sect, inKeyTable = "", false
			if m := docTable.FindStringSubmatch(line); m != nil {
				sect = m[1]
				tables[sect] = true
			}
			continue
		case strings.HasPrefix(line, "### "):
			inKeyTable = false
			if m := docTable.FindStringSubmatch(line); m != nil {
				sect = m[1]
			} else if m := docTopKey.FindStringSubmatch(line); m != nil && topLevel {
				add("", m[1], line)
			}
			continue
		}
		if m := docSwitch.FindStringSubmatch(line); m != nil && sect != "" {
			sect = m[1]
			continue
		}
		if !strings.HasPrefix(line, "|") {
			inKeyTable = false
			continue
		}
		cells := strings.Split(line, "|")
		if len(cells) < 3 {
			continue
		}
		first := strings.TrimSpace(cells[1])
		if first == "Key" {
			inKeyTable = true
			continue
		}
		if !inKeyTable || sect == "" && !topLevel || strings.HasPrefix(first, "---") {
			continue
		}
		rowSect := sect
		if m := docOtherIn.FindStringSubmatch(first); m != nil {
			rowSect = m[1]
			first = docOtherIn.ReplaceAllString(first, "")
		}
		for _, m := range docTick.FindAllStringSubmatch(first, -1) {
			entries = append(entries, entry{rowSect, anyName(strings.Trim(m[1], "[]")), line})
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		sect, name := e.sect, e.name
		if i := strings.LastIndexByte(name, '.'); i >= 0 {
			// "[[tls.certificate]]", "auth.scram_iterations": a key named
			// by its full name, in another table's section; otherwise
			// a dotted key of this table ("users.\"NAME\"").
			if first, _, _ := strings.Cut(name, "."); tables[first] {
				sect = ""
			}
			if sect != "" {
				name = sect + "." + name
			}
			i = strings.LastIndexByte(name, '.')
			sect, name = name[:i], name[i+1:]
		}
		add(sect, name, e.line)
	}
	for name := range tables {
		// A table is documented by its heading.
		sect, key := "", name
		if i := strings.LastIndexByte(name, '.'); i >= 0 {
			sect, key = name[:i], name[i+1:]
		}
		if _, ok := rows[sect][key]; !ok {
			add(sect, key, "## `["+name+"]`")
		}
	}
	return rows
}
