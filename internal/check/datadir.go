package check

// The data directory's owner and modes, everything in it
// (fsutil.InspectDataDir); serve checks only the directory itself
// (fsutil.CheckDataDir).

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"postern/internal/fsutil"
	"postern/internal/privs"
)

// maxListed bounds the entries one line of postern check names.
const maxListed = 5

// listFindings names the entries of fs, at most maxListed, each with
// detail(f): "users.json (uid 0), queue (uid 0) and 12 more".
func listFindings(fs []fsutil.Finding, detail func(fsutil.Finding) string) string {
	var b strings.Builder
	for i, f := range fs {
		if i == maxListed {
			fmt.Fprintf(&b, " and %d more", len(fs)-i)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		name := f.Rel
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
func (c *Checker) checkDataDir() {
	const check = "data-dir"
	dir, pc := c.Config.DataDir, c.Config.Process
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
	findings, n, unread, err := fsutil.InspectDataDir(dir, uid, true)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		c.ok(check, "", fmt.Sprintf("%s does not exist yet: postern serve creates it (mode 0700) for the user it runs as (%s)", dir, who))
		return
	case err != nil:
		c.fail(check, "", fmt.Sprintf("data_dir %s: %v", dir, err), "make data_dir a directory the server's user owns")
		return
	}
	byKind := map[string][]fsutil.Finding{}
	for _, f := range findings {
		k := f.Kind
		if k == fsutil.FindReadable && !f.World {
			k = "group-readable"
		}
		byKind[k] = append(byKind[k], f)
	}
	if fs := byKind[fsutil.FindOwner]; len(fs) > 0 {
		c.fail(check, "", fmt.Sprintf("%s: %s to another user than the server's (%s), so it may not read or replace them: %s",
			dir, count(len(fs), "entry belongs", "entries belong"), who, listFindings(fs, func(f fsutil.Finding) string { return fmt.Sprintf("uid %d", f.UID) })),
			fmt.Sprintf("chown -R %s %s", fsutil.OwnerSpec(pc.User, pc.Group, uid), dir))
	}
	if fs := byKind[fsutil.FindWritable]; len(fs) > 0 {
		c.fail(check, "", fmt.Sprintf("%s: %s writable by the group or others: %s", dir, count(len(fs), "entry is", "entries are"), listFindings(fs, modeDetail)),
			"chmod -R go-w "+dir)
	}
	secrets := func(fs []fsutil.Finding, status, by string) {
		paths := make([]string, len(fs))
		for i, f := range fs {
			paths[i] = filepath.Join(dir, f.Rel)
		}
		c.add(status, check, "", fmt.Sprintf("%s: %s readable by %s: %s", dir, count(len(fs), "secret file (a key or password hashes) is", "secret files (keys or password hashes) are"), by, listFindings(fs, modeDetail)),
			"chmod 600 "+strings.Join(paths, " "))
	}
	if fs := byKind[fsutil.FindReadable]; len(fs) > 0 {
		secrets(fs, StatusFail, "everyone")
	}
	if fs := byKind["group-readable"]; len(fs) > 0 {
		secrets(fs, StatusWarn, "the group")
	}
	if len(unread) > 0 {
		c.warn(check, "", fmt.Sprintf("%s: %s not be inspected: %v", dir, count(len(unread), "entry could", "entries could"), unread[0]),
			"run postern check as root, or as the server's user")
	}
	if len(findings) == 0 && len(unread) == 0 {
		c.ok(check, "", fmt.Sprintf("%s and its %d entries belong to the server's user (%s); none is writable, and no secret readable, by others", dir, n, who))
	}
}

func modeDetail(f fsutil.Finding) string { return fmt.Sprintf("mode %04o", f.Mode) }

// count is "1 entry is" or "3 entries are".
func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
