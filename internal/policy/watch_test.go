package policy

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestWatch(t *testing.T) {
	dir := t.TempDir()
	main := filepath.Join(dir, "rules.conf")
	d := filepath.Join(dir, "rules.d")
	changes := make(chan struct{}, 16)
	w := Watch(10*time.Millisecond, func() { changes <- struct{}{} }, main, d)
	defer w.Stop()
	expect := func(what string) {
		t.Helper()
		select {
		case <-changes:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no change seen", what)
		}
	}
	quiet := func(what string) {
		t.Helper()
		select {
		case <-changes:
			t.Fatalf("%s: got a change, want none", what)
		case <-time.After(50 * time.Millisecond):
		}
	}
	quiet("nothing happened")
	os.WriteFile(main, []byte("* cpu a/\n"), 0o644)
	expect("main file created")
	os.Mkdir(d, 0o755)
	expect("drop-in directory created")
	os.WriteFile(filepath.Join(d, "a.conf"), []byte("x"), 0o644)
	expect("drop-in added")
	// Replaced by rename, as editors do, with the same size.
	tmp := filepath.Join(dir, "tmp")
	os.WriteFile(tmp, []byte("* cpu b/\n"), 0o644)
	os.Rename(tmp, main)
	expect("main file replaced")
	os.Remove(filepath.Join(d, "a.conf"))
	expect("drop-in removed")
	quiet("settled")
	select {
	case <-w.Stop():
	case <-time.After(5 * time.Second):
		t.Fatal("the watcher did not stop")
	}
	<-w.Stop() // twice is fine
}
