package policies

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the expected errors of testdata/*.bad.yml")

// TestGoodPolicies loads every policy that must load: testdata/*.good.yml,
// the examples and the presets.
func TestGoodPolicies(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob("testdata/*.good.yml")
	examples, _ := filepath.Glob("examples/*.yaml")
	files = append(files, examples...)
	if len(files) < 3 {
		t.Fatalf("found only %d good policies", len(files))
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			t.Parallel()
			if _, err := LoadFile(f); err != nil {
				t.Fatal(err)
			}
		})
	}
	for _, n := range PresetNames() {
		t.Run("preset "+n, func(t *testing.T) {
			t.Parallel()
			p, err := Preset(n)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Spec.Stages) == 0 || len(p.Spec.SLIs) == 0 {
				t.Errorf("preset %s has %d stages and %d SLIs", n, len(p.Spec.Stages), len(p.Spec.SLIs))
			}
		})
	}
}

// TestBadPolicies checks that each testdata/*.bad.yml fails with exactly
// the errors in its .err file: every problem, each with its line and path.
func TestBadPolicies(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob("testdata/*.bad.yml")
	if len(files) < 5 {
		t.Fatalf("found only %d bad policies", len(files))
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			t.Parallel()
			_, err := LoadFile(f)
			if err == nil {
				t.Fatal("loaded; want errors")
			}
			compareGolden(t, strings.TrimSuffix(f, ".yml")+".err", err.Error()+"\n")
		})
	}
}

// compareGolden compares got with the golden file, which -update rewrites.
func compareGolden(t *testing.T, golden, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./policies -update)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs (-want +got):\n%s", golden, diff)
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	p, err := LoadFile("testdata/minimal.good.yml")
	if err != nil {
		t.Fatal(err)
	}
	s := p.Spec
	got := []any{s.Alpha, time.Duration(s.Interval), s.MinSamples, s.OnQueryError, len(s.Windows), s.Baseline.MaxRatio, s.Baseline.On(), s.SLIs[0].Name, s.SLIs[0].Objective}
	want := []any{0.05, 30 * time.Second, 100.0, "hold", 2, 2.0, true, "drain-failure", 99.9}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]time.Duration{15 * time.Minute, 5 * time.Minute, 3 * time.Minute, time.Minute}, p.Windows()); diff != "" {
		t.Errorf("windows (-want +got):\n%s", diff)
	}
}

// TestQueryRendering compares exact query strings, as pyrra's tests do:
// targets enter only as quoted matcher values.
func TestQueryRendering(t *testing.T) {
	t.Parallel()
	p, err := Load([]byte(`
apiVersion: phaseguard.dev/v1alpha1
kind: Policy
metadata: {name: render}
spec:
  windows: [{long: 5m, short: 1m, factor: 10}]
  slis:
    - name: drain
      objective: 99.9
      ratio:
        bad: sum(increase(phase_requests_total{service="$service",pod_template_hash="$hash",phase!="active"}[$window]))
        total: sum(increase(phase_requests_total{service="$service",pod_template_hash="$hash"}[$window]))
`), "render")
	if err != nil {
		t.Fatal(err)
	}
	s := &p.Spec.SLIs[0]
	tgt := Target{Service: "checkout", Hash: "7f8c9d6b4"}
	bad := `phase_requests_total{phase!="active",pod_template_hash="7f8c9d6b4",service="checkout"}`
	total := `phase_requests_total{pod_template_hash="7f8c9d6b4",service="checkout"}`
	tag := func(q, part, w string) string {
		return fmt.Sprintf(`label_replace(label_replace(%s, "phaseguard_part", %q, "", ""), "phaseguard_window", %q, "", "")`, q, part, w)
	}
	batch := func(long string) string {
		return strings.Join([]string{
			tag("sum("+bornAware(bad, long)+")", "bad", "5m"), tag("sum("+bornAware(bad, "1m")+")", "bad", "1m"),
			tag("sum("+bornAware(total, long)+")", "total", "5m"), tag("sum("+bornAware(total, "1m")+")", "total", "1m"),
			tag("count(count_over_time("+total+"["+long+"]) > 1)", "presence/0", "5m"), tag("count(count_over_time("+total+"[1m]) > 1)", "presence/0", "1m"),
		}, " or ")
	}
	want := batch("5m")
	if diff := cmp.Diff(want, s.Query(tgt)); diff != "" {
		t.Errorf("batched query (-want +got):\n%s", diff)
	}
	// Within 2m30.2s (rounded up to 2m31s) the 5m window is cut, its label
	// kept; the 1m window is whole. Within 5m or more nothing changes.
	within := batch("2m31s")
	got, err := s.QueryWithin(tgt, 2*time.Minute+30*time.Second+200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(within, got); diff != "" {
		t.Errorf("query within 2m31s (-want +got):\n%s", diff)
	}
	if got, err := s.QueryWithin(tgt, 5*time.Minute); err != nil || got != want {
		t.Errorf("query within 5m = %s, %v; want the whole query", got, err)
	}
	if got, want := s.PartQuery(PartBad, time.Minute, tgt), "sum("+bornAware(bad, "1m")+")"; got != want {
		t.Errorf("part query = %s, want %s", got, want)
	}
	// A hostile value stays inside its quoted string: the rendered query
	// still parses to the same shape. (analysis rejects such values before
	// they get here; this is the second fence.)
	hostile := s.Query(Target{Service: "checkout", Hash: `x"} or vector(1) #`})
	expr, err := promqlParser.ParseExpr(hostile)
	if err != nil {
		t.Fatalf("hostile value broke the query: %v\n%s", err, hostile)
	}
	if strings.Count(expr.String(), "vector(1)") != 0 && !strings.Contains(expr.String(), `\"} or vector(1) #`) {
		t.Errorf("hostile value escaped its string: %s", expr)
	}
}

func TestStages(t *testing.T) {
	t.Parallel()
	p, err := Preset("phase-default")
	if err != nil {
		t.Fatal(err)
	}
	prev, ok := p.Previous("canary-50")
	if !ok || prev.Name != "canary-10" {
		t.Errorf("previous of canary-50 = %v, %v; want canary-10", prev.Name, ok)
	}
	if _, ok := p.Previous("canary-10"); ok {
		t.Error("canary-10 has a previous stage; want none")
	}
	if got := p.PlannedLooks("canary-50"); got != 30 {
		t.Errorf("planned looks of canary-50 = %d, want 30 (15m / 30s)", got)
	}
}

func TestResolve(t *testing.T) {
	t.Parallel()
	for _, ref := range []string{"phase-default", "examples/checkout.yaml", "apiVersion: phaseguard.dev/v1alpha1\nkind: Policy\nmetadata: {name: inline}\nspec:\n  slis: [{preset: flaps}]\n"} {
		if _, err := Resolve(ref); err != nil {
			t.Errorf("Resolve(%.30q): %v", ref, err)
		}
	}
	for _, ref := range []string{"", "no-such-preset-or-file"} {
		if _, err := Resolve(ref); err == nil {
			t.Errorf("Resolve(%q) succeeded; want an error", ref)
		}
	}
}

// TestQueryWithinWithoutParsing checks that every preset SLI's parts are
// cut by substitution (no parsing per look), and that substitution gives
// what parsing gives.
func TestQueryWithinWithoutParsing(t *testing.T) {
	tgt := Target{Service: "checkout", Namespace: "shop", Hash: "7f8c9d6b4"}
	for _, name := range PresetNames() {
		p, err := Preset(name)
		if err != nil {
			t.Fatal(err)
		}
		for i := range p.Spec.SLIs {
			s := &p.Spec.SLIs[i]
			if len(s.compiled.anyWindow) != len(s.compiled.parts) {
				t.Errorf("%s/%s: %d of %d parts can take any window", name, s.Name, len(s.compiled.anyWindow), len(s.compiled.parts))
			}
			for _, span := range []time.Duration{time.Second, 41 * time.Second, 2*time.Minute + 30*time.Second} {
				fast, err := s.QueryWithin(tgt, span)
				if err != nil {
					t.Fatal(err)
				}
				parsed := *s
				c := *s.compiled
				c.anyWindow = nil
				parsed.compiled = &c
				slow, err := parsed.QueryWithin(tgt, span)
				if err != nil {
					t.Fatal(err)
				}
				if fast != slow {
					t.Errorf("%s/%s within %s: substituted\n%s\nparsed\n%s", name, s.Name, span, fast, slow)
				}
			}
		}
	}
}
