package config

// The keys that differ between two configurations, for reload's report
// (`postern reload`, SIGHUP): the same tree `postern config` prints, so
// a key is named as the file names it and its value shows as printed.
// Secrets never appear: the tree holds the names of secret files, never
// their contents.

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
)

// Change is one key whose value differs between two configurations.
type Change struct {
	// Key is the key's path as the file writes it:
	// "limits.max_recipients", "aliases.\"info@example.test\"",
	// "listener[0].address".
	Key string
	// Old and New are the values as `postern config` prints them
	// (strings quoted); "(none)" when the key is absent on that side.
	Old, New string
}

// String is "key: old → new".
func (c Change) String() string { return c.Key + ": " + c.Old + " → " + c.New }

// Changes returns the keys whose values differ from old to new, sorted
// by key. A table that appears or disappears ([acme]) shows as its keys;
// an array of tables ([[listener]]) is compared element by element,
// "listener[1]" standing for an element that appears or disappears.
func Changes(old, new *Config) []Change {
	var out []Change
	changes("", old.tree(), new.tree(), &out)
	slices.SortFunc(out, func(a, b Change) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// none is how a missing value prints.
const none = "(none)"

func changes(prefix string, old, new map[string]any, out *[]Change) {
	keys := make(map[string]bool, len(new))
	for k := range old {
		keys[k] = true
	}
	for k := range new {
		keys[k] = true
	}
	for k := range keys {
		changedValue(join(prefix, k), old[k], new[k], out)
	}
}

func changedValue(key string, ov, nv any, out *[]Change) {
	ov, nv = table(ov), table(nv)
	if reflect.DeepEqual(ov, nv) {
		return
	}
	om, oIsMap := ov.(map[string]any)
	nm, nIsMap := nv.(map[string]any)
	if (oIsMap || ov == nil) && (nIsMap || nv == nil) && (oIsMap || nIsMap) {
		changes(key, om, nm, out)
		return
	}
	ol, oIsList := ov.([]map[string]any)
	nl, nIsList := nv.([]map[string]any)
	if (oIsList || ov == nil) && (nIsList || nv == nil) {
		for i := range max(len(ol), len(nl)) {
			ek := fmt.Sprintf("%s[%d]", key, i)
			switch {
			case i >= len(ol):
				*out = append(*out, Change{Key: ek, Old: none, New: "added"})
			case i >= len(nl):
				*out = append(*out, Change{Key: ek, Old: "present", New: "removed"})
			default:
				changes(ek, ol[i], nl[i], out)
			}
		}
		return
	}
	*out = append(*out, Change{Key: key, Old: show(ov), New: show(nv)})
}

// table returns a map of strings (delivery.tls_minimum) as a table, so
// that its keys are compared one by one; other values unchanged.
func table(v any) any {
	m, ok := v.(map[string]string)
	if !ok {
		return v
	}
	t := make(map[string]any, len(m))
	for k, s := range m {
		t[k] = s
	}
	return t
}

// bareKey is a key TOML writes without quotes.
var bareKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func join(prefix, k string) string {
	if !bareKey.MatchString(k) {
		k = fmt.Sprintf("%q", k)
	}
	if prefix == "" {
		return k
	}
	return prefix + "." + k
}

// show prints a value of the tree as TOML would, on one line.
func show(v any) string {
	switch v := v.(type) {
	case nil:
		return none
	case string:
		return fmt.Sprintf("%q", v)
	case []string:
		q := make([]string, len(v))
		for i, s := range v {
			q[i] = fmt.Sprintf("%q", s)
		}
		return "[" + strings.Join(q, ", ") + "]"
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = join("", k) + " = " + show(v[k])
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return fmt.Sprint(v)
}
