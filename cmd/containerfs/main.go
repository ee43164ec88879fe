// Command containerfs is the process-container daemon, its CLI, and, when
// run as mount.container, the mount(8) helper.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	if strings.HasPrefix(filepath.Base(os.Args[0]), "mount.") {
		os.Exit(mountHelper(os.Args[1:]))
	}
	if err := rootCmd().Execute(); err != nil {
		os.Exit(1)
	}
}

func fatalf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "containerfs: "+format+"\n", a...)
	os.Exit(1)
}
