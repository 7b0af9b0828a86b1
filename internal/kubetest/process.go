package kubetest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Process is a server process a test started: its output is kept, and
// written to the test log when the test fails.
type Process struct {
	name   string
	cmd    *exec.Cmd
	out    syncBuffer
	exited chan struct{}
	err    error
}

// LogDirEnv names a directory StartProcess copies each process's whole
// output into (NAME.log) when the test ends, for reading a passing run too.
const LogDirEnv = "KUBETEST_LOG_DIR"

// StartProcess starts cmd (its Stdout and Stderr are replaced) and stops
// it when t ends: an interrupt, then a kill after 15 s. If the test failed,
// the last 8 KB of its output go to the test log under name; with
// $KUBETEST_LOG_DIR set, all of it goes to a file there.
func StartProcess(t testing.TB, name string, cmd *exec.Cmd) *Process {
	t.Helper()
	p := &Process{name: name, cmd: cmd, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &p.out, &p.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s (%s): %v", name, cmd.Path, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("%s output (last 8 KB):\n%s", name, p.Tail(8<<10))
		}
		if dir := os.Getenv(LogDirEnv); dir != "" {
			path := filepath.Join(dir, name+".log")
			if err := os.WriteFile(path, []byte(p.Output()), 0o644); err != nil {
				t.Logf("%s: %v", LogDirEnv, err)
			}
		}
	})
	return p
}

// Exited is closed when the process has exited; Err then says how.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Err is the process's exit error, once Exited is closed.
func (p *Process) Err() error { return p.err }

// Output returns everything the process wrote so far.
func (p *Process) Output() string { return p.out.String() }

// Tail returns the last n bytes of the process's output.
func (p *Process) Tail(n int) string {
	s := p.out.String()
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
