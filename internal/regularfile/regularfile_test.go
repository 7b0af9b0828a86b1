package regularfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestRead(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := func(name string, n int) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(strings.Repeat("x", n)), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path string
		want       string // "" for a read of size bytes
		size       int
	}{
		{"at the limit", file("ok", 100), "", 100},
		{"a byte over", file("big", 101), "101 bytes, at most 100 allowed", 0},
		{"directory", dir, "not a regular file (a directory)", 0},
		{"/dev/zero", "/dev/zero", "not a regular file (a device)", 0},
		{"fifo", fifo, "not a regular file (a named pipe)", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			done := make(chan struct{})
			var b []byte
			var err error
			go func() { b, err = Read(tc.path, 100); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("Read did not return")
			}
			if tc.want == "" {
				if err != nil || len(b) != tc.size {
					t.Errorf("got %d bytes, %v; want %d bytes", len(b), err, tc.size)
				}
				return
			}
			if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v; want refused: %s", err, tc.want)
			}
		})
	}
}
