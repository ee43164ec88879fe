// Users and groups: names and IDs for rules and perm sections, from the
// system's databases, cached until Flush (a reload of the rules).

package policy

import (
	"os/user"
	"strconv"
	"sync"
)

// Users resolves the user and group names rules and configurations use.
// SystemUsers asks the system's databases; tests use a fake.
type Users interface {
	LookupUser(name string) (uid uint32, ok bool)
	LookupGroup(name string) (gid uint32, ok bool)
	UserName(uid uint32) (string, bool)
	GroupName(gid uint32) (string, bool)
	// InGroup tells whether user uid is listed as a member of group gid
	// (supplementary membership in the group database).
	InGroup(uid, gid uint32) bool
}

// SystemUsers is Users over os/user, with answers cached until Flush: rules
// are matched on every exec, and /etc/group is not re-read for each one.
// The engine flushes it on every reload.
type SystemUsers struct {
	mu     sync.Mutex
	groups map[uint32]map[uint32]bool // uid → its groups; guarded by mu
	unames map[uint32]string          // guarded by mu
	gnames map[uint32]string          // guarded by mu
}

var _ Users = (*SystemUsers)(nil)

// NewSystemUsers returns an empty cache over the system's databases.
func NewSystemUsers() *SystemUsers { return &SystemUsers{} }

// Flush forgets every cached answer.
func (s *SystemUsers) Flush() {
	s.mu.Lock()
	s.groups, s.unames, s.gnames = nil, nil, nil
	s.mu.Unlock()
}

// LookupUser implements Users.
func (s *SystemUsers) LookupUser(name string) (uint32, bool) {
	u, err := user.Lookup(name)
	if err != nil {
		return 0, false
	}
	v, err := strconv.ParseUint(u.Uid, 10, 32)
	return uint32(v), err == nil
}

// LookupGroup implements Users.
func (s *SystemUsers) LookupGroup(name string) (uint32, bool) {
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, false
	}
	v, err := strconv.ParseUint(g.Gid, 10, 32)
	return uint32(v), err == nil
}

// UserName implements Users.
func (s *SystemUsers) UserName(uid uint32) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n, ok := s.unames[uid]; ok {
		return n, n != ""
	}
	n := ""
	if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		n = u.Username
	}
	if s.unames == nil {
		s.unames = map[uint32]string{}
	}
	s.unames[uid] = n
	return n, n != ""
}

// GroupName implements Users.
func (s *SystemUsers) GroupName(gid uint32) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n, ok := s.gnames[gid]; ok {
		return n, n != ""
	}
	n := ""
	if g, err := user.LookupGroupId(strconv.FormatUint(uint64(gid), 10)); err == nil {
		n = g.Name
	}
	if s.gnames == nil {
		s.gnames = map[uint32]string{}
	}
	s.gnames[gid] = n
	return n, n != ""
}

// InGroup implements Users. os/user lists a user's groups with the
// primary group included, which libcgroup's check of the group's member
// list leaves out; the rules also match the process's effective gid, so
// the difference shows only for a process running under another gid than
// its user's primary one.
func (s *SystemUsers) InGroup(uid, gid uint32) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	set, ok := s.groups[uid]
	if !ok {
		set = map[uint32]bool{}
		if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
			if ids, err := u.GroupIds(); err == nil {
				for _, id := range ids {
					if v, err := strconv.ParseUint(id, 10, 32); err == nil {
						set[uint32(v)] = true
					}
				}
			}
		}
		if s.groups == nil {
			s.groups = map[uint32]map[uint32]bool{}
		}
		s.groups[uid] = set
	}
	return set[gid]
}

// resolveUser is a user name or, failing that, a number.
func resolveUser(u Users, name string) (uint32, bool) {
	if id, ok := u.LookupUser(name); ok {
		return id, true
	}
	if v, err := strconv.ParseUint(name, 10, 32); err == nil {
		return uint32(v), true
	}
	return 0, false
}

// resolveGroup is a group name or, failing that, a number.
func resolveGroup(u Users, name string) (uint32, bool) {
	if id, ok := u.LookupGroup(name); ok {
		return id, true
	}
	if v, err := strconv.ParseUint(name, 10, 32); err == nil {
		return uint32(v), true
	}
	return 0, false
}
