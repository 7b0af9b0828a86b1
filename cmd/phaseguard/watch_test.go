package main

import (
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phaseguard/phaseguard/internal/promtest"
	"github.com/phaseguard/phaseguard/replay"
	"github.com/phaseguard/phaseguard/scenarios"
)

// TestWatchDecides watches bundled scenarios' stages to their decision:
// the flapping canary fails at the look that shows it (the demo's +5m),
// the healthy one passes at the soak's end, the thin one holds there; one
// timestamped line per look, then the deciding verdict, exit by it.
func TestWatchDecides(t *testing.T) {
	t.Parallel()
	tests := []struct {
		scenario, stage string
		code, looks     int
		last            string
	}{
		{"flapping", "canary-50", exitFail, 10, "stage canary-50 decided at +5m: fail: roll back"},
		{"healthy", "canary-50", exitPass, 30, "stage canary-50 decided at +15m: pass: its soak was watched to its end"},
		{"thin-traffic", "canary-10", exitHold, 20, "stage canary-10 decided at +10m: hold at the soak's end: pause for a human"},
	}
	lookLine := regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ  look (\d+)/(\d+)  (pass|hold|fail)( so far)?  \S+ left  `)
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := runCLI(t, "watch", "--replay", tt.scenario, "--stage", tt.stage)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out, errOut)
			}
			looks := lookLine.FindAllStringSubmatch(out, -1)
			if len(looks) != tt.looks {
				t.Fatalf("%d look lines, want %d:\n%s", len(looks), tt.looks, out)
			}
			for i, m := range looks {
				final := m[4] == ""
				if (i == len(looks)-1) != final {
					t.Errorf("look %s: final %t, want only the last look to decide", m[1], final)
				}
			}
			if !strings.HasSuffix(out, tt.last+"\n") {
				t.Errorf("output does not end with %q:\n%s", tt.last, out)
			}
			if strings.Contains(out, "\x1b[") {
				t.Error("terminal escapes in output that is not a terminal")
			}
		})
	}
}

// TestWatchLive is the live status a terminal gets: redrawn in place (the
// cursor up over the last status, the screen cleared below), every line in
// the width, with a burn sparkline that shows the fault.
func TestWatchLive(t *testing.T) {
	t.Parallel()
	code, out, errOut := runCLI(t, "watch", "--replay", "flapping", "--stage", "canary-50", "--status", "live")
	if code != exitFail {
		t.Fatalf("exit %d, want %d: %s", code, exitFail, errOut)
	}
	redraws := regexp.MustCompile(`\x1b\[(\d+)A\x1b\[J`).FindAllStringSubmatchIndex(out, -1)
	if len(redraws) != 9 {
		t.Fatalf("%d redraws, want 9 (10 looks)", len(redraws))
	}
	// Each redraw moves up over exactly the lines the last status drew.
	prev := 0
	for _, r := range redraws {
		status := out[prev:r[0]]
		if prev > 0 {
			status = status[strings.Index(status, "J")+1:]
		}
		if up := out[r[2]:r[3]]; up != strconv.Itoa(strings.Count(status, "\n")) {
			t.Errorf("redraw goes up %s lines over a status of %d:\n%q", up, strings.Count(status, "\n"), status)
		}
		prev = r[0]
	}
	final := out[redraws[len(redraws)-1][1]:]
	for _, want := range []string{"look 10 of 30", "FAIL (decides the stage)", "worst: flaps 80.0× over 1m", "peak burn per look ▂▂████████", "stage canary-50 decided at +5m: fail: roll back"} {
		if !strings.Contains(final, want) {
			t.Errorf("last status and report lack %q:\n%s", want, final)
		}
	}
	for _, l := range strings.Split(final, "\n") {
		if n := len([]rune(l)); n > 100 {
			t.Errorf("line of %d columns: %q", n, l)
		}
	}
}

// syncWriter lets a test read what a command wrote while it writes.
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.String()
}

// TestWatchInterrupted: Ctrl-C (the context cancelled) mid-stage prints
// the verdict so far and exits hold, even for a canary that was passing:
// a stage not watched to its end is never a pass.
func TestWatchInterrupted(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr bytes.Buffer
	stdout := &syncWriter{w: new(bytes.Buffer)}
	go func() {
		for ctx.Err() == nil && !strings.Contains(stdout.String(), "look 3/30") {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
	}()
	code := run(ctx, []string{"watch", "--replay", "healthy", "--stage", "canary-50", "--pace", "100ms"},
		strings.NewReader(""), stdout, &stderr, func(string) string { return "" })
	if code != exitHold {
		t.Fatalf("exit %d, want %d (hold)\n%s\n%s", code, exitHold, stdout.String(), stderr.String())
	}
	for _, want := range []string{"Interrupted after watching", "of the 15m soak: the stage is undecided, which is not a pass", "PASS  policy phase-default"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}

	cancelled, stop := context.WithCancel(context.Background())
	stop()
	var out bytes.Buffer
	if code := run(cancelled, []string{"watch", "--replay", "healthy", "--stage", "canary-50"}, strings.NewReader(""), &out, &stderr, func(string) string { return "" }); code != exitHold {
		t.Errorf("cancelled before the first look: exit %d, want %d: %s", code, exitHold, out.String())
	}
	if !strings.Contains(out.String(), "interrupted before the first look: not a pass") {
		t.Errorf("cancelled before the first look: %s", out.String())
	}
}

// TestWatchJSON: with --output json every look is one verdict per line,
// and a stage that the data ends before deciding holds.
func TestWatchJSON(t *testing.T) {
	t.Parallel()
	code, out, errOut := runCLI(t, "watch", "--replay", "flapping", "--stage", "canary-50", "--output", "json")
	if code != exitFail {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 10 {
		t.Fatalf("%d lines, want 10 looks", len(lines))
	}
	var v struct{ Verdict string }
	if err := json.Unmarshal([]byte(lines[9]), &v); err != nil || v.Verdict != "fail" {
		t.Errorf("last line %q: verdict %q, %v", lines[9], v.Verdict, err)
	}

	b, _ := scenarios.Lookup("healthy")
	st, err := replay.Load(bytes.NewReader(b.OpenMetrics))
	if err != nil {
		t.Fatal(err)
	}
	_, end := st.Range()
	st.Close()
	code, out, errOut = runCLI(t, "watch", "--replay", "healthy", "--stage", "canary-50", "--start", end.Add(-2*time.Minute).Format(time.RFC3339))
	if code != exitHold || !strings.Contains(out, "The data ends at") {
		t.Errorf("stage past the data: exit %d, want %d, and why:\n%s\n%s", code, exitHold, out, errOut)
	}
}

// TestWatchPrometheus watches against a real Prometheus a stage whose
// looks are all due (it started in the past): the watch makes the latest
// maxCatchUp of them at once and decides as the replay does.
func TestWatchPrometheus(t *testing.T) {
	t.Parallel()
	b, _ := scenarios.Lookup("healthy")
	prom := promtest.Start(t, promtest.Backfill(b.OpenMetrics))
	tr := b.Truth
	code, out, errOut := runCLI(t, "watch", "--prometheus", prom.URL(),
		"--service", tr.Service, "--namespace", tr.Namespace, "--canary-hash", tr.CanaryHash, "--stable-hash", tr.StableHash,
		"--stage", "canary-50", "--since", tr.StageStart.Format(time.RFC3339), "--start", tr.StageStart.Add(10*time.Minute).Format(time.RFC3339))
	if code != exitPass {
		t.Fatalf("exit %d, want pass\n%s\n%s", code, out, errOut)
	}
	if n := strings.Count(out, "  look "); n != maxCatchUp {
		t.Errorf("%d looks, want the latest %d", n, maxCatchUp)
	}
	if !strings.Contains(out, "  look 11/30  ") || !strings.Contains(out, "  look 30/30  pass  0s left") {
		t.Errorf("want looks 11 to 30:\n%s", out)
	}
}

// TestWatchBadInput: each bad flag is named, and nothing is watched.
func TestWatchBadInput(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--replay", "healthy"}, `--stage "": want a stage of policy phase-default (canary-10, canary-50, full)`},
		{[]string{"--replay", "healthy", "--stage", "canary-99"}, `--stage "canary-99"`},
		{[]string{"--replay", "healthy", "--stage", "full", "--status", "tty"}, `--status "tty": want auto, live or lines`},
		{[]string{"--replay", "healthy", "--stage", "full", "--pace", "-1s"}, "--pace -1s: must not be negative"},
		{[]string{"--prometheus", "http://127.0.0.1:1", "--stage", "full", "--pace", "1s"}, "--pace is for --replay"},
		{[]string{"--replay", "healthy", "--stage", "full", "--start", "yesterday"}, `--start "yesterday"`},
	} {
		code, out, errOut := runCLI(t, append([]string{"watch"}, tt.args...)...)
		if code != exitError || !strings.Contains(errOut, tt.want) || out != "" {
			t.Errorf("watch %q: exit %d, stderr %q, stdout %q; want exit %d naming %q", tt.args, code, errOut, out, exitError, tt.want)
		}
	}
}
