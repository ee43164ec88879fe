package proc

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Mount is one line of /proc/PID/mountinfo (proc(5)), with its escapes
// undone.
type Mount struct {
	ID, Parent int
	Root       string // the root of the mount within its filesystem
	Point      string // where it is mounted
	Options    string // per-mount options: "rw,nosuid,..."
	FSType     string // "fuse.container", "cgroup", ...
	Source     string
	Super      string // the filesystem's own options
}

// ReadMountInfo reads and parses root/self/mountinfo (root "" is /proc).
func ReadMountInfo(root string) ([]Mount, error) {
	if root == "" {
		root = Root
	}
	b, err := os.ReadFile(root + "/self/mountinfo")
	if err != nil {
		return nil, err
	}
	return ParseMountInfo(string(b))
}

// ParseMountInfo parses mountinfo lines: "id parent maj:min root point
// options [optional fields...] - fstype source superoptions".
func ParseMountInfo(s string) ([]Mount, error) {
	var ms []Mount
	for line := range strings.Lines(s) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if len(f) < 6 || sep < 0 || sep+1 >= len(f) {
			return nil, fmt.Errorf("mountinfo %.60q: %w", line, ErrMalformed)
		}
		id, err1 := strconv.Atoi(f[0])
		parent, err2 := strconv.Atoi(f[1])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("mountinfo %.60q: %w", line, ErrMalformed)
		}
		m := Mount{ID: id, Parent: parent, Root: Unescape(f[3]), Point: Unescape(f[4]), Options: f[5]}
		rest := f[sep+1:]
		if len(rest) > 0 {
			m.FSType = rest[0]
		}
		if len(rest) > 1 {
			m.Source = Unescape(rest[1])
		}
		if len(rest) > 2 {
			m.Super = rest[2]
		}
		ms = append(ms, m)
	}
	return ms, nil
}

// Unescape undoes the octal escapes (\040 for a space, \011, \012, \134)
// that mounts and mountinfo print for white space and backslashes.
func Unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return '0' <= c && c <= '7' }
