//go:build unix

package policies

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const minimalPolicy = "apiVersion: phaseguard.dev/v1alpha1\nkind: Policy\nmetadata: {name: minimal}\nspec:\n  slis: [{preset: drain-failure}]\n"

// padded returns minimalPolicy grown with a comment to exactly n bytes.
func padded(n int) []byte {
	b := []byte(minimalPolicy + "# ")
	return append(b, []byte(strings.Repeat("x", n-len(b)-1)+"\n")...)
}

// TestLoadFileRefuses checks that LoadFile (and Resolve, LintFile, which
// read through it) refuses anything but a regular file of at most 1 MiB,
// naming the path, before reading it: a policy path to /dev/zero or a
// FIFO must neither hang nor fill memory.
func TestLoadFileRefuses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fifo := filepath.Join(dir, "fifo.yaml")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	exact := write("exact.yaml", padded(MaxFileSize))
	tests := []struct {
		name, path string
		want       string // "" when the file must load
	}{
		{"exactly 1 MiB", exact, ""},
		{"symlink to a policy", symlink(t, exact, filepath.Join(dir, "link.yaml")), ""},
		{"1 MiB and a byte", write("big.yaml", padded(MaxFileSize+1)), "1048577 bytes, at most 1048576 allowed: a policy is a YAML file of at most 1 MiB"},
		{"directory", dir, "not a regular file (a directory)"},
		{"/dev/zero", "/dev/zero", "not a regular file (a device)"},
		{"fifo", fifo, "not a regular file (a named pipe)"},
		{"missing", filepath.Join(dir, "nope.yaml"), "no such file or directory"},
		{"empty", write("empty.yaml", nil), "empty policy"},
		{"only comments", write("comments.yaml", []byte("# nothing\n\n  # here\n")), "empty policy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for name, load := range map[string]func(string) (*Policy, error){"LoadFile": LoadFile, "LintFile": LintFile, "Resolve": Resolve} {
				start := time.Now()
				done := make(chan error, 1)
				go func() { _, err := load(tt.path); done <- err }()
				var err error
				select {
				case err = <-done:
				case <-time.After(5 * time.Second):
					t.Fatalf("%s(%s) still running after 5s", name, tt.path)
				}
				if tt.want == "" {
					if err != nil {
						t.Errorf("%s: %v", name, err)
					}
					continue
				}
				if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.path) {
					t.Errorf("%s: error %v; want one naming %s and saying %q", name, err, tt.path, tt.want)
				}
				if d := time.Since(start); d > time.Second {
					t.Errorf("%s took %s to refuse", name, d)
				}
			}
		})
	}
}

func symlink(t *testing.T, target, link string) string {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	return link
}

// TestLoadRefusesLargeInline: inline YAML (plugin config, Action input)
// has the same bound as a file.
func TestLoadRefusesLargeInline(t *testing.T) {
	t.Parallel()
	if _, err := Load(padded(MaxFileSize), "inline"); err != nil {
		t.Errorf("1 MiB inline: %v", err)
	}
	_, err := Load(padded(MaxFileSize+1), "inline")
	var pe *Error
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "at most 1048576") {
		t.Errorf("1 MiB and a byte inline: %v; want a size error", err)
	}
}
