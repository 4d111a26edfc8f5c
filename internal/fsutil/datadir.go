package fsutil

// The data directory's owner and modes. serve checks the directory
// itself before it opens anything, and refuses to start on a problem
// (CheckDataDir); postern check inspects everything in it and reports
// (internal/check). Both rest on InspectDataDir.

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
)

// Kinds of Finding.
const (
	FindOwner    = "owner"    // belongs to another uid than the server's
	FindWritable = "writable" // the group or others may write to it
	FindReadable = "readable" // a secret the group or others may read
)

// Finding is one thing wrong with the owner or the mode of the data
// directory or of an entry in it.
type Finding struct {
	Kind  string      // FindOwner, FindWritable or FindReadable
	Rel   string      // the path under the data directory; "." is the directory itself
	Mode  fs.FileMode // its permission bits
	UID   int         // FindOwner: the owner
	World bool        // FindReadable: everyone may read it, not only the group
}

// SecretFile reports whether the file at rel (under the data directory)
// holds a secret: a private key (TLS, ACME, DKIM), the users file (the
// password hashes and SCRAM keys) or the first start's password.
func SecretFile(rel string) bool {
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
func inspectEntry(rel string, fi fs.FileInfo, uid int) []Finding {
	if fi.Mode()&(fs.ModeSymlink|fs.ModeSocket) != 0 {
		return nil
	}
	var out []Finding
	perm := fi.Mode().Perm()
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != uid {
		out = append(out, Finding{Kind: FindOwner, Rel: rel, Mode: perm, UID: int(st.Uid)})
	}
	if perm&0o022 != 0 {
		out = append(out, Finding{Kind: FindWritable, Rel: rel, Mode: perm})
	}
	if fi.Mode().IsRegular() && perm&0o044 != 0 && SecretFile(rel) {
		out = append(out, Finding{Kind: FindReadable, Rel: rel, Mode: perm, World: perm&0o004 != 0})
	}
	return out
}

// InspectDataDir inspects dir (following it if it is a symbolic link)
// for a server running as uid: the directory itself, as serve does
// before it opens anything, and with deep every entry under it too,
// without following links (postern check). It returns the findings, the
// number of entries inspected, and the errors met reading entries under
// dir (for example, permission denied to a user other than the owner).
func InspectDataDir(dir string, uid int, deep bool) (findings []Finding, n int, unread []error, err error) {
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

// OwnerSpec is the owner to give the data directory to, for chown: the
// configured user and group, or without user the server's uid (by name
// when it has one; "name:" is the name and its login group).
func OwnerSpec(userName, group string, uid int) string {
	if userName != "" {
		return userName + ":" + group
	}
	return UserName(uid) + ":"
}

// UserName is uid's user name, or the number when it has none.
func UserName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return u.Username
	}
	return strconv.Itoa(uid)
}

// CheckDataDir checks that dir belongs to uid, the user Postern runs
// as, and that no one else may write to it; userName and group are the
// configured user and group, "" for none. serve refuses to start
// otherwise: the error says how to fix it.
func CheckDataDir(dir, userName, group string, uid int) error {
	findings, _, _, err := InspectDataDir(dir, uid, false)
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	fix := fmt.Sprintf("chown -R %s %s && chmod 700 %s", OwnerSpec(userName, group, uid), dir, dir)
	for _, f := range findings {
		switch f.Kind {
		case FindOwner:
			if uid == 0 && userName == "" {
				// Started as root without user: the directory's owner is
				// the user to serve as, not root.
				fix = fmt.Sprintf("serve as its owner: user = %q in the configuration (serve binds as root, then switches), or start postern as that user", UserName(f.UID))
			}
			return fmt.Errorf("data directory %s belongs to uid %d, but Postern runs as uid %d; fix: %s", dir, f.UID, uid, fix)
		case FindWritable:
			return fmt.Errorf("data directory %s is writable by others (mode %04o); fix: %s", dir, f.Mode, fix)
		}
	}
	return nil
}
