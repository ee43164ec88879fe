// A set of CPUs, as the kernel's cpu_set_t: the CPUs a task may run on, and
// the machine's.

package sched

import "math/bits"

// Mask is a set of CPUs, laid out as the kernel's cpu_set_t.
type Mask [16]uint64

// MaskOf makes a mask of the given CPUs.
func MaskOf(cpus ...int) Mask {
	var m Mask
	for _, c := range cpus {
		m.Set(c)
	}
	return m
}

// Set adds CPU c.
func (m *Mask) Set(c int) {
	if c >= 0 && c < len(m)*64 {
		m[c/64] |= 1 << (c % 64)
	}
}

// Count is the number of CPUs in m.
func (m Mask) Count() int {
	n := 0
	for _, w := range m {
		n += bits.OnesCount64(w)
	}
	return n
}

func (m Mask) or(o Mask) Mask {
	for i := range m {
		m[i] |= o[i]
	}
	return m
}

func (m Mask) and(o Mask) Mask {
	for i := range m {
		m[i] &= o[i]
	}
	return m
}

func (m Mask) intersects(o Mask) bool {
	for i := range m {
		if m[i]&o[i] != 0 {
			return true
		}
	}
	return false
}

func (m Mask) empty() bool { return m == Mask{} }
