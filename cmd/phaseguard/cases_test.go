package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// cases holds the shared cases' inputs (../shared/cases), copied once
// for the engine's tests; their right results are asserted here through
// the CLI, the way a release manager meets them.
const cases = "../../analysis/testdata/cases/"

const drainPolicy = `apiVersion: phaseguard.dev/v1alpha1
kind: Policy
metadata: {name: min-drain}
spec:
  stages:
    - {name: canary-10, soak: 10m}
  slis:
    - preset: drain-failure
`

func writeTemp(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSharedCasesCLI gives every case of ../shared/cases its right result
// (the table in its README) through the CLI.
func TestSharedCasesCLI(t *testing.T) {
	t.Parallel()
	policy := writeTemp(t, "policy.yaml", []byte(drainPolicy))
	target := []string{"--service", "checkout", "--canary-hash", "7f8c9d6b4", "--stage", "canary-10"}
	t.Run("lazy-counter-series fails", func(t *testing.T) {
		t.Parallel()
		code, out, errOut := runCLI(t, append([]string{"evaluate", "--policy", policy, "--replay", cases + "lazy-counter-series.om"}, target...)...)
		if code != exitFail {
			t.Errorf("exit %d, want %d (fail):\n%s%s", code, exitFail, out, errOut)
		}
	})
	t.Run("missing-recent-windows holds naming 3m and 1m", func(t *testing.T) {
		t.Parallel()
		code, out, errOut := runCLI(t, append([]string{"evaluate", "--policy", policy, "--replay", cases + "missing-recent-windows.om", "--at", "2026-01-01T00:20:00Z"}, target...)...)
		if code != exitHold || !strings.Contains(out, "3m, 1m") {
			t.Errorf("exit %d, want %d (hold) naming 3m, 1m:\n%s%s", code, exitHold, out, errOut)
		}
	})
	for _, f := range []string{"le-bad-minus-bucket.yaml", "le-good-bucket.yaml"} {
		t.Run("le-spelling "+f, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := runCLI(t, "lint", cases+f)
			if code != 1 || !strings.Contains(out+errOut, `le="2"`) {
				t.Errorf("lint exit %d, want 1 naming le=\"2\":\n%s%s", code, out, errOut)
			}
			code, out, errOut = runCLI(t, append([]string{"evaluate", "--policy", cases + f, "--replay", cases + "le-spelling.om"}, target...)...)
			if code == exitPass {
				t.Errorf("evaluate passed a 30x burn:\n%s%s", out, errOut)
			}
		})
	}
	t.Run("mesh-without-convention passes a canary inside its budget", func(t *testing.T) {
		t.Parallel()
		gz, err := os.ReadFile(cases + "mesh-lowbad.om.gz")
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(bytes.NewReader(gz))
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		code, out, errOut := runCLI(t, "evaluate", "--policy", cases+"mesh-payments.yaml", "--replay", writeTemp(t, "low.om", data),
			"--service", "payments", "--namespace", "pay", "--canary-hash", "5b7d9c8f6", "--stable-hash", "84c6f7d9b", "--stage", "canary-10", "--at", "2026-02-01T00:10:00Z")
		if code != exitPass {
			t.Errorf("exit %d, want %d (pass):\n%s%s", code, exitPass, out, errOut)
		}
	})
	t.Run("verdict-json-shape", func(t *testing.T) {
		t.Parallel()
		empty := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"status":"success","data":{"resultType":"vector","result":[]}}`)
		}))
		defer empty.Close()
		failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, `{"status":"error","errorType":"unavailable","error":"overloaded"}`, http.StatusServiceUnavailable)
		}))
		defer failing.Close()
		shape := func(cmd, url string) string {
			args := []string{cmd, "--policy", policy, "--prometheus", url, "--service", "checkout", "--canary-hash", "7f8c9d6b4", "--output", "json", "--timeout", "3s"}
			if cmd == "evaluate" {
				args = append(args, "--at", "2026-01-01T00:20:00Z")
			} else {
				args = append(args, "--from", "2026-01-01T00:20:00Z", "--to", "2026-01-01T00:20:00Z")
			}
			_, out, errOut := runCLI(t, args...)
			var v struct {
				SLIs []struct {
					Windows []struct{ Window string }
					Burn    map[string]*float64
				}
			}
			if err := json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &v); err != nil || len(v.SLIs) != 1 {
				t.Fatalf("%s: not one SLI in JSON (%v):\n%s%s", cmd, err, out, errOut)
			}
			s := v.SLIs[0]
			var wins []string
			for _, w := range s.Windows {
				wins = append(wins, w.Window)
			}
			return fmt.Sprintf("windows %v burn keys %d non-null %d", wins, len(s.Burn), countNonNil(s.Burn))
		}
		for _, cmd := range []string{"evaluate", "backtest"} {
			noData, queryErr := shape(cmd, empty.URL), shape(cmd, failing.URL)
			want := "windows [15m 5m 3m 1m] burn keys 4 non-null 0"
			if noData != want || queryErr != want {
				t.Errorf("%s: no data %q, query error %q; want both %q", cmd, noData, queryErr, want)
			}
		}
	})
}

func countNonNil(m map[string]*float64) int {
	n := 0
	for _, v := range m {
		if v != nil {
			n++
		}
	}
	return n
}
