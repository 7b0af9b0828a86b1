package main

import (
	"bytes"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phaseguard/phaseguard/promapi/promapitest"
)

// TestEvaluateOversizedAnswer runs the phaseguard binary against a server
// that answers every query with 100 MB, starting just before the deadline
// (issue 9: such an answer held the CLI 8.9 s against --timeout 5s and took
// 4.5 GB). The binary is a separate process so that its peak RSS is its
// own. Whether the answer comes at once or trickles past the deadline, the
// CLI holds within the timeout plus 0.5 s, under 200 MB.
func TestEvaluateOversizedAnswer(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "phaseguard")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	const (
		timeout = 3 * time.Second
		maxRSS  = 200 << 20
	)
	tests := []struct {
		name   string
		answer *promapitest.Oversized
		reason string
	}{
		{
			// Time to arrive whole: uncapped, decoding it takes gigabytes.
			name:   "at once",
			answer: &promapitest.Oversized{Size: 100e6},
			reason: "response too large",
		},
		{
			name:   "at once, a second before the deadline",
			answer: &promapitest.Oversized{Size: 100e6, After: timeout - time.Second},
			reason: "response too large",
		},
		{
			// 2 MB/s: the deadline comes before the limit.
			name:   "trickled from half a second before the deadline",
			answer: &promapitest.Oversized{Size: 100e6, After: timeout - 500*time.Millisecond, Rate: 2e6},
			reason: "query error",
		},
	}
	// One at a time: each is timed.
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.answer)
			t.Cleanup(srv.Close)
			cmd := exec.Command(bin, "evaluate", "--prometheus", srv.URL, "--timeout", timeout.String(),
				"--service", "checkout", "--canary-hash", "7f8c9d6b4", "--stage", "canary-10", "--at", "2026-01-01T00:20:00Z")
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			start := time.Now()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			peak := watchPeakRSS(cmd.Process.Pid)
			err := cmd.Wait()
			elapsed := time.Since(start)
			rss := peak()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != exitHold {
				t.Errorf("exit %v, want %d (hold)\nstdout:\n%s\nstderr:\n%s", err, exitHold, stdout.String(), stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.reason) {
				t.Errorf("stdout does not contain %q:\n%s", tt.reason, stdout.String())
			}
			n, sent := tt.answer.Stats()
			t.Logf("wall %s, peak RSS %.1f MB; %d queries, %.1f MB sent", elapsed.Round(time.Millisecond), float64(rss)/1e6, n, float64(sent)/1e6)
			// 1.5 s of slack: the CLI's start and exit beside the full
			// -race suite on two cores took up to 0.75 s; reading 100 MB
			// to its end, or retrying past the deadline, takes longer.
			if elapsed > timeout+1500*time.Millisecond {
				t.Errorf("the CLI took %s, want at most the %s timeout + 1.5s", elapsed, timeout)
			}
			if rss == 0 {
				t.Error("no peak RSS read from /proc: the memory bound is unchecked")
			}
			if rss > maxRSS {
				t.Errorf("peak RSS %d MB, want under %d MB", rss>>20, maxRSS>>20)
			}
		})
	}
}

// watchPeakRSS polls the peak resident set size (VmHWM in
// /proc/PID/status) of a running process every 5 ms and returns a
// function that stops and gives the last value read, in bytes. The
// rusage of a child is no measure here: Go starts children with
// CLONE_VM, so Linux counts the parent's peak, the test binary's, in the
// child's ru_maxrss.
func watchPeakRSS(pid int) func() int64 {
	var peak atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
				for _, line := range strings.Split(string(b), "\n") {
					if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
						var kb int64
						if _, err := fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &kb); err == nil && kb<<10 > peak.Load() {
							peak.Store(kb << 10)
						}
					}
				}
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return func() int64 {
		close(stop)
		<-done
		return peak.Load()
	}
}
