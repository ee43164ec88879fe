package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"testing"
	"time"
)

// User is an unprivileged account a test created, removed when the test
// ends.
type User struct {
	Name     string
	UID, GID uint32
}

// NewUser creates a system account with no home and no login shell for
// the test (useradd), and removes it (userdel) when the test ends. Tests
// of what an unprivileged user can do against a limit run as it.
func NewUser(t testing.TB) User {
	t.Helper()
	RequireRoot(t)
	name := fmt.Sprintf("cfst%d", time.Now().UnixNano()%1e8)
	out, err := exec.Command("useradd", "--system", "--no-create-home", "--user-group",
		"--shell", "/usr/sbin/nologin", name).CombinedOutput()
	if err != nil {
		t.Fatalf("useradd %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("userdel", name).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "userdel %s: %v: %s\n", name, err, out)
		}
	})
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatalf("look up %s: %v", name, err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	return User{Name: name, UID: uint32(uid), GID: uint32(gid)}
}
