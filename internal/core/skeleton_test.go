package core

import "testing"

func TestLogf(t *testing.T) {
	var got string
	l := Logf(func(f string, a ...any) { got = f })
	l.Printf("x %d", 1)
	if got != "x %d" {
		t.Errorf("Logf.Printf did not call the function: %q", got)
	}
	var nilLog Logf
	nilLog.Printf("containerfs core test: a nil Logf logs to the standard logger") // must not panic
}
