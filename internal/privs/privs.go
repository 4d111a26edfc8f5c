// Package privs resolves the user and group Postern serves as, switches
// the process to them after the listeners are bound (root binds, the
// user serves), and says whom the files a command run as root writes
// into the data directory must belong to.
package privs

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"syscall"

	"postern/internal/fsutil"
)

// Identity is a resolved user and group.
type Identity struct {
	UID, GID int
	Groups   []int // supplementary groups, the primary group first
}

// Lookup resolves the names (or numbers) of a user and of a group in
// the system's user database. An empty group is the user's login group.
func Lookup(userName, group string) (Identity, error) {
	u, err := user.Lookup(userName)
	if err != nil {
		if _, nerr := strconv.Atoi(userName); nerr == nil {
			u, err = user.LookupId(userName)
		}
	}
	if err != nil {
		return Identity{}, fmt.Errorf("user = %q: %w (create it: useradd --system --home-dir /var/lib/postern --shell /usr/sbin/nologin postern)", userName, err)
	}
	var id Identity
	id.UID, _ = strconv.Atoi(u.Uid)
	id.GID, _ = strconv.Atoi(u.Gid)
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			if _, nerr := strconv.Atoi(group); nerr == nil {
				g, err = user.LookupGroupId(group)
			}
		}
		if err != nil {
			return Identity{}, fmt.Errorf("group = %q: %w", group, err)
		}
		id.GID, _ = strconv.Atoi(g.Gid)
	}
	id.Groups = []int{id.GID}
	if gids, err := u.GroupIds(); err == nil {
		for _, s := range gids {
			if n, err := strconv.Atoi(s); err == nil && n != id.GID {
				id.Groups = append(id.Groups, n)
			}
		}
	}
	return id, nil
}

// DataOwner returns whom the files and directories a command creates or
// replaces in dataDir must belong to, or the server could not read
// them: when the process runs as root, the user and group named (see
// Lookup), or without a user the data directory's owner (the server
// runs as that uid, or serve refuses to start). Otherwise, or when the
// directory does not exist yet or belongs to root, nil: they are the
// process's, which is the server's identity too.
func DataOwner(dataDir, userName, group string) (*fsutil.Owner, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	if userName != "" {
		id, err := Lookup(userName, group)
		if err != nil {
			return nil, err
		}
		return &fsutil.Owner{UID: id.UID, GID: id.GID}, nil
	}
	fi, err := os.Stat(dataDir)
	if err != nil {
		return nil, nil
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Uid == 0 {
		return nil, nil
	}
	return &fsutil.Owner{UID: int(st.Uid), GID: int(st.Gid)}, nil
}

// Drop switches the process to id: supplementary groups, then the
// group, then the user (after which the first two could not be
// changed). On Linux Go applies each to every thread (since Go 1.16).
// It fails when setuid(0) still works afterwards.
func Drop(id Identity) error {
	if err := syscall.Setgroups(id.Groups); err != nil {
		return fmt.Errorf("serve: setgroups: %w", err)
	}
	if err := syscall.Setgid(id.GID); err != nil {
		return fmt.Errorf("serve: setgid %d: %w", id.GID, err)
	}
	if err := syscall.Setuid(id.UID); err != nil {
		return fmt.Errorf("serve: setuid %d: %w", id.UID, err)
	}
	if id.UID != 0 && syscall.Setuid(0) == nil {
		return errors.New("serve: privileges not dropped: setuid(0) still works")
	}
	return nil
}
