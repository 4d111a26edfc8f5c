package privs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Lookup takes names and numbers, and names what is missing.
func TestLookup(t *testing.T) {
	id, err := Lookup("root", "")
	if err != nil || id.UID != 0 || id.GID != 0 || len(id.Groups) == 0 || id.Groups[0] != 0 {
		t.Errorf("root: %+v, %v", id, err)
	}
	if id, err := Lookup("0", "0"); err != nil || id.UID != 0 || id.GID != 0 {
		t.Errorf("0:0: %+v, %v", id, err)
	}
	if _, err := Lookup("no-such-user-postern", ""); err == nil || !strings.Contains(err.Error(), `user = "no-such-user-postern"`) ||
		!strings.Contains(err.Error(), "useradd --system") {
		t.Errorf("missing user: %v", err)
	}
	if _, err := Lookup("root", "no-such-group-postern"); err == nil || !strings.Contains(err.Error(), `group = "no-such-group-postern"`) {
		t.Errorf("missing group: %v", err)
	}
}

// DataOwner: as root without a user, the data directory's owner; a
// directory root owns, or none, is nil.
func TestDataOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		if o, err := DataOwner(t.TempDir(), "root", ""); o != nil || err != nil {
			t.Errorf("not root: %+v, %v; want nil", o, err)
		}
		return
	}
	data := filepath.Join(t.TempDir(), "data")
	if o, err := DataOwner(data, "", ""); o != nil || err != nil {
		t.Errorf("no data directory: %+v, %v; want nil", o, err)
	}
	os.Mkdir(data, 0o700)
	if o, err := DataOwner(data, "", ""); o != nil || err != nil {
		t.Errorf("root's data directory: %+v, %v; want nil", o, err)
	}
	os.Chown(data, 65534, 65533)
	if o, err := DataOwner(data, "", ""); o == nil || o.UID != 65534 || o.GID != 65533 || err != nil {
		t.Errorf("nobody's data directory: %+v, %v; want 65534:65533", o, err)
	}
	if o, err := DataOwner(data, "root", "0"); o == nil || o.UID != 0 || o.GID != 0 || err != nil {
		t.Errorf("user root: %+v, %v", o, err)
	}
}
