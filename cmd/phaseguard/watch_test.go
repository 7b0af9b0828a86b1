package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
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
	// The first status follows the line that announces the watch.
	prev := strings.Index(out, "canary-50 of phase-default · look 1 of 30")
	if prev < 0 {
		t.Fatalf("no first status:\n%s", out)
	}
	for i, r := range redraws {
		status := out[prev:r[0]]
		if i > 0 {
			status = status[strings.Index(status, "J")+1:]
		}
		if up := out[r[2]:r[3]]; up != strconv.Itoa(strings.Count(status, "\n")) {
			t.Errorf("redraw goes up %s lines over a status of %d:\n%q", up, strings.Count(status, "\n"), status)
		}
		prev = r[0]
	}
	final := out[redraws[len(redraws)-1][1]:]
	for _, want := range []string{"look 10 of 30", "FAIL (decides the stage)", "worst: flaps 80.0× over 1m", "peak window burn per look ▂▂████████", "stage canary-50 decided at +5m: fail: roll back"} {
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
	for _, want := range []string{"HOLD policy phase-default stage canary-50", "interrupted after watching", "of the 15m soak: the stage is undecided, which is not a pass; its last look (pass): all 7 SLIs pass"} {
		if !strings.Contains(strings.Join(strings.Fields(stdout.String()), " "), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}
	if strings.Contains(stdout.String(), "PASS  policy") {
		t.Errorf("an interrupted stage reads as a pass:\n%s", stdout.String())
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
	if code != exitHold || !strings.Contains(out, "HOLD  policy") || !strings.Contains(out, "the data ends at") {
		t.Errorf("stage past the data: exit %d, want %d, and why:\n%s\n%s", code, exitHold, out, errOut)
	}
	// As JSON, the stage's hold is the last line: a script reading it
	// never takes the last look's pass for the stage's.
	code, out, _ = runCLI(t, "watch", "--replay", "healthy", "--stage", "canary-50", "--output", "json", "--start", end.Add(-2*time.Minute).Format(time.RFC3339))
	lines = strings.Split(strings.TrimSpace(out), "\n")
	var held struct{ Verdict, Reason string }
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &held); err != nil || code != exitHold || held.Verdict != "hold" || !strings.Contains(held.Reason, "its last look (pass)") {
		t.Errorf("stage past the data, JSON: exit %d, last line %q (%v)", code, lines[len(lines)-1], err)
	}
}

// TestWatchPrometheus watches against a real Prometheus a stage that
// started before the watch: every look already due is made at once, so a
// fault seen at an early look only still fails the stage. A transient
// drain fault (20× from the stage's 2nd to 5th minute) in a 20m stage:
// the later looks pass, the stage fails.
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
	if n := strings.Count(out, "  look "); n != 30 {
		t.Errorf("%d looks, want every one of the 30 due", n)
	}
	if !strings.Contains(out, "  look 1/30  ") || !strings.Contains(out, "  look 30/30  pass  0s left") {
		t.Errorf("want looks 1 to 30:\n%s", out)
	}

	// testdata/transient: a canary at 50 requests/s, 15 s scrapes, whose
	// drain failures burn 20× from 00:12 to 00:15 only (a new-user trial's
	// data): every look made, the stage fails at the fault's looks.
	data, err := os.ReadFile("testdata/transient/data.om")
	if err != nil {
		t.Fatal(err)
	}
	prom = promtest.Start(t, promtest.Backfill(data))
	args := []string{"--policy", "testdata/transient/policy.yaml", "--service", "checkout", "--canary-hash", "7f8c9d6b4",
		"--stage", "long", "--since", "2026-01-01T00:00:00Z", "--start", "2026-01-01T00:10:00Z"}
	for _, src := range [][]string{{"--prometheus", prom.URL()}, {"--replay", "testdata/transient/data.om"}} {
		code, out, errOut := runCLI(t, append(append([]string{"watch"}, src...), args...)...)
		if code != exitFail || !strings.Contains(out, "stage long decided at +") || !strings.Contains(out, "fail: roll back") {
			t.Errorf("%s: exit %d, want the transient fault to fail the stage\n%s\n%s", src[0], code, out, errOut)
		}
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
		{[]string{"--replay", "healthy", "--stage", "full", "--pace", "-1s"}, "--pace -1s: want 0 to 1h"},
		{[]string{"--replay", "healthy", "--stage", "full", "--pace", "87600h"}, "--pace 87600h0m0s: want 0 to 1h"},
		{[]string{"--prometheus", "http://127.0.0.1:1", "--stage", "full", "--pace", "1s"}, "--pace is for --replay"},
		{[]string{"--replay", "healthy", "--stage", "full", "--start", "yesterday"}, `--start "yesterday"`},
		{[]string{"--replay", "healthy", "--stage", "full", "--start", "1970-01-01T00:00:00Z"}, "--start 1970-01-01T00:00:00Z is before --since 2026-01-01T00:10:00Z"},
		{[]string{"--replay", "healthy", "--stage", "full", "--start", "2027-01-01T00:00:00Z"}, "--start 2027-01-01T00:00:00Z: the replayed data runs from"},
		{[]string{"--prometheus", "http://127.0.0.1:1", "--stage", "full", "--start", "9999-01-01T00:00:00Z"}, "--start 9999-01-01T00:00:00Z is in the future"},
		{[]string{"--replay", "healthy", "--stage", "full", "--since", "2026-01-01T00:30:00Z", "--start", "2026-01-01T00:20:00Z"}, "--start 2026-01-01T00:20:00Z is before --since 2026-01-01T00:30:00Z"},
		{[]string{"--replay", "healthy", "--policy", "testdata/nostages.yaml", "--stage", "full"}, "policy nostages has no stages"},
	} {
		code, out, errOut := runCLI(t, append([]string{"watch"}, tt.args...)...)
		if code != exitError || !strings.Contains(errOut, tt.want) || out != "" {
			t.Errorf("watch %q: exit %d, stderr %q, stdout %q; want exit %d naming %q", tt.args, code, errOut, out, exitError, tt.want)
		}
	}
}
