// Package cpulist is the kernel's list format for sets of CPUs and memory
// nodes ("0-3,7"), shared by the subsystems that read or write it (cpuset
// for its cpus and mems files, cpuacct for the number of possible CPUs).
//
// Parse follows lib/bitmap-str.c's bitmap_parselist exactly: commas and
// white space separate regions, a region is N, A-B, A-B:used/group or
// "all", and "N" stands for the last bit. Its errors wrap the errno the
// kernel returns for the same input (EINVAL for bad syntax, ERANGE for a bit
// beyond the mask, EOVERFLOW for a number beyond 32 bits), so a control file
// can return them as they are. String prints the canonical form the kernel
// prints with %*pbl.
//
// The package only parses, formats and reads sysfs lists; it never changes
// anything on the machine.
package cpulist
