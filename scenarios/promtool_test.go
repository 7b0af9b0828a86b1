package scenarios

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/phaseguard/phaseguard/internal/promtest"
)

// TestPromtoolBackfill backfills bundled scenarios into a TSDB with the real
// promtool, as users replaying them into Prometheus do. Without promtool
// it fails under CI=true and skips otherwise (promtest.Binary).
func TestPromtoolBackfill(t *testing.T) {
	t.Parallel()
	promtool := promtest.Binary(t, "promtool")
	files := map[string][]byte{}
	for _, name := range []string{"drain-misrouting", "flapping"} {
		b, ok := Lookup(name)
		if !ok {
			t.Fatalf("no bundled scenario %s", name)
		}
		files[name] = b.OpenMetrics
	}
	// Label values that need escaping, at a 10 s interval with restarts.
	odd := Spec{Name: "odd", Seed: 5, Namespace: "a\"b\\c\nd", ScrapeInterval: 10 * time.Second,
		Restarts: []Restart{{Version: Canary, At: 25 * time.Minute}, {Version: Stable, At: 5 * time.Minute, NewPod: true}}}
	sc, err := Generate(odd)
	if err != nil {
		t.Fatal(err)
	}
	files[odd.Name] = sc.OpenMetrics
	// What real exporters do: lazy children, a rescheduled canary pod, the
	// newest minutes missing, a renamed family and a respelled label value.
	messy := Spec{Name: "messy", Seed: 6, CanaryPods: 2, LazyChildren: true,
		Restarts: []Restart{{Version: Canary, Pod: 1, At: 20 * time.Minute, NewPod: true}},
		Cutoffs:  []Cutoff{{Version: Canary, For: 2 * time.Minute}},
		Drops:    []Drop{DropSchemaErrors, DropDuplicateValue}}
	if sc, err = Generate(messy); err != nil {
		t.Fatal(err)
	}
	files[messy.Name] = sc.OpenMetrics
	for name, om := range files {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			file := filepath.Join(dir, name+".om")
			if err := os.WriteFile(file, om, 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, promtool, "tsdb", "create-blocks-from", "openmetrics", file, filepath.Join(dir, "tsdb"))
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("promtool: %v\n%s", err, out)
			}
			p := mustParse(t, name, om)
			if got := blockSamples(out); got != p.samples {
				t.Errorf("promtool wrote %d samples, the file has %d\n%s", got, p.samples, out)
			}
		})
	}
}

// blockSamples adds up the NUM SAMPLES column of promtool's block table.
func blockSamples(out []byte) int {
	sc := bufio.NewScanner(bytes.NewReader(out))
	col, n := -1, 0
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if col < 0 {
			// Header: BLOCK ULID MIN TIME MAX TIME DURATION NUM SAMPLES ...
			if i := strings.Index(sc.Text(), "NUM SAMPLES"); i >= 0 {
				col = len(strings.Fields(sc.Text()[:i])) - 3 // "ULID", "TIME" twice are split words
			}
			continue
		}
		if col < len(fields) {
			v, err := strconv.Atoi(fields[col])
			if err == nil {
				n += v
			}
		}
	}
	return n
}
