package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// selfSum returns the running test binary's bytes and SHA-256 (hex): what
// install-plugin copies when it runs in process.
func selfSum(t *testing.T) ([]byte, string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return data, hex.EncodeToString(sum[:])
}

// listDir returns the names in dir, sorted.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// checkCopy checks that path is a regular file holding want, mode 0755.
func checkCopy(t *testing.T, path string, want []byte) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatalf("copy: %v", err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o755 {
		t.Errorf("copy %s: mode %s, want a regular file -rwxr-xr-x", path, fi.Mode())
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("copy %s: %d bytes differ from this binary's %d", path, len(got), len(want))
	}
}

// TestInstallPlugin runs install-plugin in process (it copies the test
// binary) into directories laid out to trick it: every good target gets
// an exact 0755 copy in one atomic step and its sha256sum line; every bad
// one is refused with exit 3 (4 for usage) and an error naming the
// argument, writing nothing anywhere.
func TestInstallPlugin(t *testing.T) {
	t.Parallel()
	self, sum := selfSum(t)
	tests := []struct {
		name string
		// setup lays out base and returns the arguments after
		// install-plugin; dir is the directory that must hold the copy
		// (or stay unchanged).
		setup    func(t *testing.T, base string) (args []string, dir string)
		wantCode int
		wantErr  string // in stderr; "" for success
		// copyName is the copy's name in dir on success (default phaseguard).
		copyName string
	}{
		{
			name:     "empty directory",
			setup:    func(t *testing.T, base string) ([]string, string) { return []string{base}, base },
			wantCode: exitPass,
		},
		{
			name: "over an older copy",
			setup: func(t *testing.T, base string) ([]string, string) {
				writeTestFile(t, filepath.Join(base, "phaseguard"), "old binary", 0o700)
				return []string{base}, base
			},
			wantCode: exitPass,
		},
		{
			name: "named copy",
			setup: func(t *testing.T, base string) ([]string, string) {
				return []string{"--name", "phaseguard-v1", base}, base
			},
			wantCode: exitPass,
			copyName: "phaseguard-v1",
		},
		{
			// The copy replaces the link; the file it points to is untouched
			// (checked after the table's checks).
			name: "existing copy is a symbolic link out of the directory",
			setup: func(t *testing.T, base string) ([]string, string) {
				dir := mkdir(t, base, "plugins")
				writeTestFile(t, filepath.Join(base, "outside"), "precious", 0o644)
				symlink(t, filepath.Join(base, "outside"), filepath.Join(dir, "phaseguard"))
				return []string{dir}, dir
			},
			wantCode: exitPass,
		},
		{
			name: "directory given through a symbolic link",
			setup: func(t *testing.T, base string) ([]string, string) {
				dir := mkdir(t, base, "real")
				symlink(t, dir, filepath.Join(base, "link"))
				return []string{filepath.Join(base, "link")}, dir
			},
			wantCode: exitPass,
		},
		{
			name:     "missing directory",
			setup:    func(t *testing.T, base string) ([]string, string) { return []string{filepath.Join(base, "nope")}, base },
			wantCode: exitError,
			wantErr:  `directory "BASE/nope": does not exist`,
		},
		{
			name: "a file as the directory",
			setup: func(t *testing.T, base string) ([]string, string) {
				writeTestFile(t, filepath.Join(base, "file"), "x", 0o644)
				return []string{filepath.Join(base, "file")}, base
			},
			wantCode: exitError,
			wantErr:  `directory "BASE/file": not a directory (a regular file)`,
		},
		{
			name: "a symbolic link to a file as the directory",
			setup: func(t *testing.T, base string) ([]string, string) {
				writeTestFile(t, filepath.Join(base, "file"), "x", 0o644)
				symlink(t, filepath.Join(base, "file"), filepath.Join(base, "link"))
				return []string{filepath.Join(base, "link")}, base
			},
			wantCode: exitError,
			wantErr:  `directory "BASE/link": not a directory (a regular file)`,
		},
		{
			name: "a dangling symbolic link as the directory",
			setup: func(t *testing.T, base string) ([]string, string) {
				symlink(t, filepath.Join(base, "gone"), filepath.Join(base, "link"))
				return []string{filepath.Join(base, "link")}, base
			},
			wantCode: exitError,
			wantErr:  `directory "BASE/link": a symbolic link to nothing`,
		},
		{
			name:     "a device as the directory",
			setup:    func(t *testing.T, base string) ([]string, string) { return []string{os.DevNull}, base },
			wantCode: exitError,
			wantErr:  `directory "/dev/null": not a directory (a device)`,
		},
		{
			name:     "empty directory argument",
			setup:    func(t *testing.T, base string) ([]string, string) { return []string{""}, base },
			wantCode: exitError,
			wantErr:  `directory "": empty`,
		},
		{
			name: "copy name is an existing directory",
			setup: func(t *testing.T, base string) ([]string, string) {
				mkdir(t, base, "phaseguard")
				return []string{base}, base
			},
			wantCode: exitError,
			wantErr:  `copy "BASE/phaseguard": rename into place:`,
		},
		{
			name: "name climbing out",
			setup: func(t *testing.T, base string) ([]string, string) {
				return []string{"--name", "../escaped", base}, base
			},
			wantCode: exitError,
			wantErr:  `--name "../escaped": must be a file name, without a directory`,
		},
		{
			name:     "name is dot-dot",
			setup:    func(t *testing.T, base string) ([]string, string) { return []string{"--name", "..", base}, base },
			wantCode: exitError,
			wantErr:  `--name "..": not a file name`,
		},
		{
			// The longest name whose temporary file's name (.NAME.tmp-
			// and 12 hex digits) still fits in 255 bytes.
			name: "longest name",
			setup: func(t *testing.T, base string) ([]string, string) {
				return []string{"--name", strings.Repeat("n", 237), base}, base
			},
			wantCode: exitPass,
			copyName: strings.Repeat("n", 237),
		},
		{
			// A legal file name, but its temporary file's is not.
			name: "name too long for its temporary file",
			setup: func(t *testing.T, base string) ([]string, string) {
				return []string{"--name", strings.Repeat("n", 238), base}, base
			},
			wantCode: exitError,
			wantErr:  `--name "` + strings.Repeat("n", 238) + `": 238 bytes, at most 237 (the copy is first written as .NAME.tmp-XXXXXXXXXXXX`,
		},
		{
			name: "name of 255 bytes",
			setup: func(t *testing.T, base string) ([]string, string) {
				return []string{"--name", strings.Repeat("n", 255), base}, base
			},
			wantCode: exitError,
			wantErr:  `": 255 bytes, at most 237`,
		},
		{
			name:     "no directory",
			setup:    func(t *testing.T, base string) ([]string, string) { return nil, base },
			wantCode: exitUsage,
			wantErr:  "phaseguard install-plugin: want one DIR, got 0\nUsage: phaseguard install-plugin",
		},
		{
			name:     "two directories",
			setup:    func(t *testing.T, base string) ([]string, string) { return []string{base, "b"}, base },
			wantCode: exitUsage,
			wantErr:  `phaseguard install-plugin: want one DIR, got 2 ("BASE", "b")` + "\nUsage: phaseguard install-plugin",
		},
		{
			name: "a flag after the directory",
			setup: func(t *testing.T, base string) ([]string, string) {
				return []string{base, "--name", "foo"}, base
			},
			wantCode: exitUsage,
			wantErr:  `phaseguard install-plugin: want one DIR, got 3 ("BASE", "--name", "foo"); flags go before DIR` + "\nUsage:",
		},
		{
			// After "--" a DIR may start with "-"; the second argument
			// still looks like a flag.
			name: "a flag after a directory given after --",
			setup: func(t *testing.T, base string) ([]string, string) {
				return []string{"--", "-dir", "-v"}, base
			},
			wantCode: exitUsage,
			wantErr:  `want one DIR, got 2 ("-dir", "-v"); flags go before DIR`,
		},
		{
			// A plain second directory is not called a flag.
			name: "no flag hint for plain extra arguments",
			setup: func(t *testing.T, base string) ([]string, string) {
				return []string{"--", "-dir", "extra"}, base
			},
			wantCode: exitUsage,
			wantErr:  `want one DIR, got 2 ("-dir", "extra")` + "\nUsage:",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			base := t.TempDir()
			args, dir := tt.setup(t, base)
			before := listDir(t, dir)
			beforeBase := listDir(t, base)
			code, out, errOut := runCLI(t, append([]string{"install-plugin"}, args...)...)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, out, errOut)
			}
			if tt.wantErr != "" {
				if want := strings.ReplaceAll(tt.wantErr, "BASE", base); !strings.Contains(unwrapped(errOut), want) {
					t.Errorf("stderr %q, want it to contain %q", errOut, want)
				}
				if out != "" {
					t.Errorf("stdout %q on a refusal", out)
				}
				if diff := cmp.Diff(before, listDir(t, dir)); diff != "" {
					t.Errorf("directory changed on a refusal (-before +after):\n%s", diff)
				}
				if diff := cmp.Diff(beforeBase, listDir(t, base)); diff != "" {
					t.Errorf("base changed on a refusal (-before +after):\n%s", diff)
				}
				return
			}
			name := tt.copyName
			if name == "" {
				name = "phaseguard"
			}
			wantOut := sum + "  " + filepath.Join(args[len(args)-1], name) + "\n"
			if out != wantOut {
				t.Errorf("stdout %q, want %q", out, wantOut)
			}
			checkCopy(t, filepath.Join(dir, name), self)
			after := listDir(t, dir)
			if !slices.Contains(after, name) || len(after) != len(before)+boolInt(!slices.Contains(before, name)) {
				t.Errorf("directory holds %v after, %v before: want only %s added (no temporary file left)", after, before, name)
			}
			if outside := filepath.Join(base, "outside"); fileExists(outside) {
				if got, _ := os.ReadFile(outside); string(got) != "precious" {
					t.Errorf("the symbolic link's target was written: %q", got)
				}
			}
		})
	}
}

// TestInstallPluginConcurrent: installs racing into one directory (two
// init containers, a restarted one) each succeed, and the copy is whole.
func TestInstallPluginConcurrent(t *testing.T) {
	t.Parallel()
	self, sum := selfSum(t)
	dir := t.TempDir()
	var wg sync.WaitGroup
	outs := make([]string, 4)
	codes := make([]int, 4)
	for i := range outs {
		wg.Go(func() {
			var stdout, stderr bytes.Buffer
			codes[i] = run(context.Background(), []string{"install-plugin", dir}, strings.NewReader(""), &stdout, &stderr, func(string) string { return "" })
			outs[i] = stdout.String() + stderr.String()
		})
	}
	wg.Wait()
	for i := range outs {
		if want := sum + "  " + filepath.Join(dir, "phaseguard") + "\n"; codes[i] != exitPass || outs[i] != want {
			t.Errorf("install %d: exit %d, output %q, want %q", i, codes[i], outs[i], want)
		}
	}
	checkCopy(t, filepath.Join(dir, "phaseguard"), self)
	if got := listDir(t, dir); !slices.Equal(got, []string{"phaseguard"}) {
		t.Errorf("directory holds %v, want only phaseguard", got)
	}
}

// TestInstallPluginBinary runs the built phaseguard binary as an init
// container of the distroless image would (no environment, no shell):
// it copies itself, the copy runs and prints the sha256sum line of
// exactly the built bytes; into a directory it may not write (as an
// unprivileged user: root ignores permission bits) it refuses, naming
// the directory.
func TestInstallPluginBinary(t *testing.T) {
	t.Parallel()
	work, err := os.MkdirTemp("", "phaseguard-install-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		filepath.WalkDir(work, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				os.Chmod(p, 0o755)
			}
			return nil
		})
		os.RemoveAll(work)
	})
	// Reachable by the unprivileged user below.
	if err := os.Chmod(work, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(work, "phaseguard")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)

	plugins := mkdir(t, work, "plugins")
	cmd := exec.Command(bin, "install-plugin", plugins)
	cmd.Env = []string{}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("install-plugin: %v\n%s", err, stderrOf(err))
	}
	copyPath := filepath.Join(plugins, "phaseguard")
	if want := hex.EncodeToString(sum[:]) + "  " + copyPath + "\n"; string(out) != want {
		t.Errorf("stdout %q, want %q", out, want)
	}
	checkCopy(t, copyPath, data)
	cmd = exec.Command(copyPath, "version")
	cmd.Env = []string{}
	if out, err := cmd.Output(); err != nil || !strings.HasPrefix(string(out), "phaseguard ") {
		t.Errorf("the copy's version: %v %q", err, out)
	}

	readOnly := mkdir(t, work, "read-only")
	if err := os.Chmod(readOnly, 0o555); err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(bin, "install-plugin", readOnly)
	cmd.Env = []string{}
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	out, err = cmd.Output()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitError {
		t.Fatalf("read-only directory: %v, stdout %q; want exit %d", err, out, exitError)
	}
	if want := `phaseguard install-plugin: directory "` + readOnly + `": create a temporary file: permission denied`; !strings.Contains(unwrapped(string(ee.Stderr)), want) {
		t.Errorf("read-only directory: stderr %q, want %q", ee.Stderr, want)
	}
	if got := listDir(t, readOnly); len(got) != 0 {
		t.Errorf("read-only directory holds %v", got)
	}
}

func writeTestFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

func mkdir(t *testing.T, base, name string) string {
	t.Helper()
	dir := filepath.Join(base, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func fileExists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func stderrOf(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(ee.Stderr)
	}
	return ""
}
