package proc

import (
	"bytes"
	"fmt"
)

// Status is what containerfs uses of /proc/TID/status.
type Status struct {
	TGID int
	// UID and GID are the real, effective, saved and filesystem IDs, in
	// the order of their lines.
	UID, GID [4]uint32
	// CPUsAllowed is the Cpus_allowed_list line as the kernel prints it
	// ("0-1"); empty when absent.
	CPUsAllowed string
	// MemsAllowed is the Mems_allowed line, a hex mask in 32-bit words
	// ("00000000,00000001"), printed MAX_NUMNODES bits wide.
	MemsAllowed string
}

// MaskBits is the width in bits of a hex mask as status prints it (4 per
// hex digit, commas between words): for MemsAllowed, MAX_NUMNODES.
func MaskBits(mask string) int {
	n := 0
	for i := 0; i < len(mask); i++ {
		if mask[i] != ',' {
			n += 4
		}
	}
	return n
}

// Real, effective and saved ID indices of Status.UID and Status.GID.
const (
	Real = iota
	Effective
	Saved
	FS
)

// ParseStatus parses /proc/TID/status. Tgid, Uid and Gid must be there.
// The Name line is escaped by the kernel, so a task's name cannot fake a
// line.
func ParseStatus(b []byte) (Status, error) {
	var st Status
	seen := 0
	for line := range bytes.Lines(b) {
		key, val, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		val = bytes.TrimSpace(val)
		switch string(key) {
		case "Tgid":
			v, ok := atou(val)
			if !ok {
				return Status{}, fmt.Errorf("status: Tgid %q: %w", val, ErrMalformed)
			}
			st.TGID = int(v)
			seen |= 1
		case "Uid", "Gid":
			ids := &st.UID
			if key[0] == 'G' {
				ids = &st.GID
			}
			i := 0
			for f := range bytes.FieldsSeq(val) {
				v, ok := atou(f)
				if !ok || i == 4 || v > 1<<32-1 {
					return Status{}, fmt.Errorf("status: %s %q: %w", key, val, ErrMalformed)
				}
				ids[i] = uint32(v)
				i++
			}
			if i != 4 {
				return Status{}, fmt.Errorf("status: %s %q: %w", key, val, ErrMalformed)
			}
			if key[0] == 'U' {
				seen |= 2
			} else {
				seen |= 4
			}
		case "Cpus_allowed_list":
			st.CPUsAllowed = string(val)
		case "Mems_allowed":
			st.MemsAllowed = string(val)
		}
	}
	if seen != 7 {
		return Status{}, fmt.Errorf("status: want Tgid, Uid and Gid lines: %w", ErrMalformed)
	}
	return st, nil
}
