package promtest

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestBlockProbes(t *testing.T) {
	t.Parallel()
	const h = 7200 // promtool's block range, seconds
	tests := []struct {
		name    string
		in      string
		want    []int64
		wantErr string
	}{
		{
			name: "one block",
			in:   "# TYPE x gauge\nx 1 7300\nx 2 7200.5\n# EOF\n",
			want: []int64{7200500},
		},
		{
			name: "first sample of each block, across series",
			in: fmt.Sprintf("# TYPE x gauge\nx{a=\"1\"} 1 %d\nx{a=\"1\"} 1 %d\nx{a=\"2\"} 1 %d\nx{a=\"2\"} 1 %d\n# EOF\n",
				h+10, 3*h+5, h+1, 2*h),
			want: []int64{(h + 1) * 1000, 3*h*1000 + 5000, 2 * h * 1000},
		},
		{name: "no timestamp", in: "# TYPE x gauge\nx 1\n# EOF\n", wantErr: "series x: sample has no timestamp"},
		{name: "no samples", in: "# EOF\n", wantErr: "no samples"},
		{name: "no EOF", in: "# TYPE x gauge\nx 1 1\n", wantErr: "data does not end with # EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := blockProbes([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("blockProbes error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("blockProbes: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("blockProbes mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestConfigYAML(t *testing.T) {
	t.Parallel()
	got, err := configYAML([]scrape{
		{target: "http://127.0.0.1:4711", interval: time.Second},
		{target: "https://exporter:8443/custom/metrics", interval: 1500 * time.Millisecond},
		{target: "127.0.0.1:9100", interval: time.Minute},
	})
	if err != nil {
		t.Fatalf("configYAML: %v", err)
	}
	var cfg struct {
		ScrapeConfigs []map[string]any `json:"scrape_configs"`
	}
	if err := json.Unmarshal(got, &cfg); err != nil {
		t.Fatalf("configYAML output is not JSON: %v\n%s", err, got)
	}
	job := func(name, interval, scheme, path, target string) map[string]any {
		return map[string]any{
			"job_name": name, "scrape_interval": interval, "scrape_timeout": interval,
			"scheme": scheme, "metrics_path": path,
			"static_configs": []any{map[string]any{"targets": []any{target}}},
		}
	}
	want := []map[string]any{
		job("scrape0", "1000ms", "http", "/metrics", "127.0.0.1:4711"),
		job("scrape1", "1500ms", "https", "/custom/metrics", "exporter:8443"),
		job("scrape2", "60000ms", "http", "/metrics", "127.0.0.1:9100"),
	}
	if diff := cmp.Diff(want, cfg.ScrapeConfigs); diff != "" {
		t.Errorf("scrape configs mismatch (-want +got):\n%s", diff)
	}

	if _, err := configYAML([]scrape{{target: "x:1", interval: 0}}); err == nil {
		t.Error("configYAML accepted a zero interval")
	}
}

// recordingTB records how a test would have ended instead of ending it.
type recordingTB struct {
	testing.TB
	ended string
}

func (r *recordingTB) Helper()           {}
func (r *recordingTB) Fatal(args ...any) { r.ended = "fatal: " + fmt.Sprint(args...) }
func (r *recordingTB) Skip(args ...any)  { r.ended = "skip: " + fmt.Sprint(args...) }

func TestBinaryMissing(t *testing.T) {
	// Not parallel: it sets environment variables.
	t.Setenv("PATH", t.TempDir())
	for _, ci := range []string{"", "true"} {
		t.Setenv("CI", ci)
		tb := &recordingTB{TB: t}
		Binary(tb, "phaseguard-no-such-binary")
		want := "skip: "
		if ci == "true" {
			want = "fatal: "
		}
		want += "promtest: phaseguard-no-such-binary not found on PATH or in /usr/bin; install it with: apt-get install -y phaseguard-no-such-binary"
		if diff := cmp.Diff(want, tb.ended); diff != "" {
			t.Errorf("CI=%q: mismatch (-want +got):\n%s", ci, diff)
		}
	}
}

func TestMissingBinaryNamesPackage(t *testing.T) {
	t.Parallel()
	for name, pkg := range map[string]string{
		"prometheus":       "prometheus",
		"promtool":         "prometheus",
		"victoria-metrics": "victoria-metrics",
	} {
		want := "promtest: " + name + " not found on PATH or in /usr/bin; install it with: apt-get install -y " + pkg
		if got := missingBinary(name); got != want {
			t.Errorf("missingBinary(%q) = %q, want %q", name, got, want)
		}
	}
}

// TestBackfillBlocks backfills data spanning three of promtool's 2h blocks
// from two sources and checks Start waited for every block.
func TestBackfillBlocks(t *testing.T) {
	t.Parallel()
	const t0 = 1767225600 // 2026-01-01T00:00:00Z, a block boundary
	var b strings.Builder
	b.WriteString("# TYPE phase_instances gauge\n")
	for i := range 6 * 12 { // 6h, every 5m
		fmt.Fprintf(&b, "phase_instances{phase=\"draining\"} %d %d\n", i%4, t0+300*i)
	}
	b.WriteString("# EOF\n")
	path := filepath.Join(t.TempDir(), "gauge.om")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	other := []byte("# TYPE up gauge\nup{job=\"x\"} 1 1767225600\n# EOF\n")

	s := Start(t, BackfillFile(path), Backfill(other))
	for _, c := range []struct {
		query string
		ts    int64
	}{
		{"phase_instances", t0},
		{"phase_instances", t0 + 7200},
		{"phase_instances", t0 + 5*3600},
		{"up", t0},
	} {
		var resp struct {
			Data struct {
				Result []json.RawMessage `json:"result"`
			} `json:"data"`
		}
		q := url.Values{"query": {c.query}, "time": {fmt.Sprint(c.ts)}}
		if err := s.getJSON(t.Context(), "/api/v1/query", q, &resp); err != nil {
			t.Fatalf("%s at %d: %v", c.query, c.ts, err)
		}
		if len(resp.Data.Result) != 1 {
			t.Errorf("%s at %d: %d results, want 1", c.query, c.ts, len(resp.Data.Result))
		}
	}
}
