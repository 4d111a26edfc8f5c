package main

// The data directory's owner and modes. serve checks the directory
// itself before it opens anything, and refuses to start on a problem
// (checkDataDir); postern check inspects everything in it and reports
// (checker.checkDataDir). Both rest on inspectDataDir.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"postern/internal/config"
	"postern/internal/privs"
)

// Kinds of dataDirFinding.
const (
	findOwner    = "owner"    // belongs to another uid than the server's
	findWritable = "writable" // the group or others may write to it
	findReadable = "readable" // a secret the group or others may read
)

// dataDirFinding is one thing wrong with the owner or the mode of the
// data directory or of an entry in it.
type dataDirFinding struct {
	kind  string
	rel   string // the path under the data directory; "." is the directory itself
	mode  fs.FileMode
	uid   int  // the owner
	world bool // findReadable: everyone may read it, not only the group
}

// secretFile reports whether the file at rel (under the data directory)
// holds a secret: a private key (TLS, ACME, DKIM), the users file (the
// password hashes and SCRAM keys) or the first start's password.
func secretFile(rel string) bool {
	rel = filepath.ToSlash(rel)
	base := filepath.Base(rel)
	return rel == "users.json" || rel == "initial-password" || strings.HasPrefix(rel, "dkim/") ||
		strings.HasSuffix(base, ".key") || strings.HasSuffix(base, "key.pem")
}

// inspectEntry returns what is wrong with one entry: it belongs to
// another uid than uid; the group or others may write to it; it is a
// secret they may read. Symbolic links (their mode means nothing) and
// sockets (the admin socket is mode 0660 with admin.socket_group) are
// not inspected.
func inspectEntry(rel string, fi fs.FileInfo, uid int) []dataDirFinding {
	if fi.Mode()&(fs.ModeSymlink|fs.ModeSocket) != 0 {
		return nil
	}
	var out []dataDirFinding
	perm := fi.Mode().Perm()
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != uid {
		out = append(out, dataDirFinding{kind: findOwner, rel: rel, mode: perm, uid: int(st.Uid)})
	}
	if perm&0o022 != 0 {
		out = append(out, dataDirFinding{kind: findWritable, rel: rel, mode: perm})
	}
	if fi.Mode().IsRegular() && perm&0o044 != 0 && secretFile(rel) {
		out = append(out, dataDirFinding{kind: findReadable, rel: rel, mode: perm, world: perm&0o004 != 0})
	}
	return out
}

// inspectDataDir inspects dir (following it if it is a symbolic link)
// for a server running as uid: the directory itself, as serve does
// before it opens anything, and with deep every entry under it too,
// without following links (postern check). It returns the findings, the
// number of entries inspected, and the errors met reading entries under
// dir (for example, permission denied to a user other than the owner).
func inspectDataDir(dir string, uid int, deep bool) (findings []dataDirFinding, n int, unread []error, err error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, 0, nil, err
	}
	if !fi.IsDir() {
		return nil, 0, nil, fmt.Errorf("%s is not a directory", dir)
	}
	findings = inspectEntry(".", fi, uid)
	if !deep {
		return findings, 0, nil, nil
	}
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			unread = append(unread, err)
			return nil // WalkDir skips a directory it cannot read
		}
		if path == dir {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) { // removed meanwhile (a spool segment)
				unread = append(unread, err)
			}
			return nil
		}
		rel, _ := filepath.Rel(dir, path)
		n++
		findings = append(findings, inspectEntry(rel, fi, uid)...)
		return nil
	})
	return findings, n, unread, err
}

// ownerSpec is the owner to give the data directory to, for chown: the
// configured user and group, or without user the server's uid (by name
// when it has one; "name:" is the name and its login group).
func ownerSpec(pc config.Process, uid int) string {
	if pc.User != "" {
		return pc.User + ":" + pc.Group
	}
	return userName(uid) + ":"
}

// userName is uid's user name, or the number when it has none.
func userName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return u.Username
	}
	return strconv.Itoa(uid)
}

// checkDataDir checks that dir belongs to uid, the user Postern runs as,
// and that no one else may write to it. serve refuses to start
// otherwise.
func checkDataDir(dir string, pc config.Process, uid int) error {
	findings, _, _, err := inspectDataDir(dir, uid, false)
	if err != nil {
		return fmt.Errorf("serve: data directory: %w", err)
	}
	fix := fmt.Sprintf("chown -R %s %s && chmod 700 %s", ownerSpec(pc, uid), dir, dir)
	for _, f := range findings {
		switch f.kind {
		case findOwner:
			if uid == 0 && pc.User == "" {
				// Started as root without user: the directory's owner is
				// the user to serve as, not root.
				fix = fmt.Sprintf("serve as its owner: user = %q in the configuration (serve binds as root, then switches), or start postern as that user", userName(f.uid))
			}
			return fmt.Errorf("serve: data directory %s belongs to uid %d, but Postern runs as uid %d; fix: %s", dir, f.uid, uid, fix)
		case findWritable:
			return fmt.Errorf("serve: data directory %s is writable by others (mode %04o); fix: %s", dir, f.mode, fix)
		}
	}
	return nil
}

// maxListed bounds the entries one line of postern check names.
const maxListed = 5

// listFindings names the entries of fs, at most maxListed, each with
// detail(f): "users.json (uid 0), queue (uid 0) and 12 more".
func listFindings(fs []dataDirFinding, detail func(dataDirFinding) string) string {
	var b strings.Builder
	for i, f := range fs {
		if i == maxListed {
			fmt.Fprintf(&b, " and %d more", len(fs)-i)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		name := f.rel
		if name == "." {
			name = "the directory itself"
		}
		fmt.Fprintf(&b, "%s (%s)", name, detail(f))
	}
	return b.String()
}

// checkDataDir reports the owner and the modes of the data directory
// and of everything in it (inspectDataDir): entries that belong to
// another user than the server's (which it may not be able to read or
// replace), that the group or others may write to, and secrets they may
// read. Without user in the configuration the server is taken to run as
// the data directory's owner (serve refuses to start otherwise).
func (c *checker) checkDataDir() {
	const check = "data-dir"
	dir, pc := c.cfg.DataDir, c.cfg.Process
	uid := os.Geteuid()
	who := fmt.Sprintf("uid %d, who runs this check", uid)
	if fi, err := os.Stat(dir); err == nil && pc.User == "" {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			uid = int(st.Uid)
			who = fmt.Sprintf("uid %d, the data directory's owner: no user in the configuration", uid)
		}
	}
	if pc.User != "" {
		id, err := privs.Lookup(pc.User, pc.Group)
		if err != nil {
			c.fail(check, "", err.Error(), "create the user, or correct user and group in the configuration")
			return
		}
		uid = id.UID
		who = fmt.Sprintf("%s, uid %d", pc.User, uid)
	}
	findings, n, unread, err := inspectDataDir(dir, uid, true)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		c.ok(check, "", fmt.Sprintf("%s does not exist yet: postern serve creates it (mode 0700) for the user it runs as (%s)", dir, who))
		return
	case err != nil:
		c.fail(check, "", fmt.Sprintf("data_dir %s: %v", dir, err), "make data_dir a directory the server's user owns")
		return
	}
	byKind := map[string][]dataDirFinding{}
	for _, f := range findings {
		k := f.kind
		if k == findReadable && !f.world {
			k = "group-readable"
		}
		byKind[k] = append(byKind[k], f)
	}
	if fs := byKind[findOwner]; len(fs) > 0 {
		c.fail(check, "", fmt.Sprintf("%s: %s to another user than the server's (%s), so it may not read or replace them: %s",
			dir, count(len(fs), "entry belongs", "entries belong"), who, listFindings(fs, func(f dataDirFinding) string { return fmt.Sprintf("uid %d", f.uid) })),
			fmt.Sprintf("chown -R %s %s", ownerSpec(pc, uid), dir))
	}
	if fs := byKind[findWritable]; len(fs) > 0 {
		c.fail(check, "", fmt.Sprintf("%s: %s writable by the group or others: %s", dir, count(len(fs), "entry is", "entries are"), listFindings(fs, modeDetail)),
			"chmod -R go-w "+dir)
	}
	secrets := func(fs []dataDirFinding, status, by string) {
		paths := make([]string, len(fs))
		for i, f := range fs {
			paths[i] = filepath.Join(dir, f.rel)
		}
		c.add(status, check, "", fmt.Sprintf("%s: %s readable by %s: %s", dir, count(len(fs), "secret file (a key or password hashes) is", "secret files (keys or password hashes) are"), by, listFindings(fs, modeDetail)),
			"chmod 600 "+strings.Join(paths, " "))
	}
	if fs := byKind[findReadable]; len(fs) > 0 {
		secrets(fs, statusFail, "everyone")
	}
	if fs := byKind["group-readable"]; len(fs) > 0 {
		secrets(fs, statusWarn, "the group")
	}
	if len(unread) > 0 {
		c.warn(check, "", fmt.Sprintf("%s: %s not be inspected: %v", dir, count(len(unread), "entry could", "entries could"), unread[0]),
			"run postern check as root, or as the server's user")
	}
	if len(findings) == 0 && len(unread) == 0 {
		c.ok(check, "", fmt.Sprintf("%s and its %d entries belong to the server's user (%s); none is writable, and no secret readable, by others", dir, n, who))
	}
}

func modeDetail(f dataDirFinding) string { return fmt.Sprintf("mode %04o", f.mode) }

// count is "1 entry is" or "3 entries are".
func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
