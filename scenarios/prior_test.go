package scenarios

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// priorZeroSpecs are the specs whose output TestPriorZeroIsByteIdentical
// pins: the demo specs and a corpus with every realism behaviour (lazy
// children, rescheduled and restarted pods, gaps, cutoffs, drops), at the
// default stage and fitted to a 15m stage as the benchmark does.
func priorZeroSpecs() []Spec {
	specs := DemoSpecs()
	for _, s := range Corpus(20260101, 10, 20) {
		specs = append(specs, s)
		short := s
		short.Name += "-15m"
		short.Stage = 15 * time.Minute
		short.Restarts, short.Gaps, short.Cutoffs = nil, nil, nil
		if f := s.Fault; f != nil {
			g := *f
			g.Onset = f.Onset / 3
			short.Fault = &g
		}
		specs = append(specs, short)
	}
	return specs
}

// TestPriorZeroIsByteIdentical checks that a spec without a prior stage
// (Prior 0) generates the bytes the generator gave before Spec.Prior
// existed: testdata/prior-zero.sha256 holds, per spec, the SHA-256 of its
// OpenMetrics and of its truth JSON as generated at commit e456acc.
func TestPriorZeroIsByteIdentical(t *testing.T) {
	t.Parallel()
	path := filepath.Join("testdata", "prior-zero.sha256")
	var b strings.Builder
	for _, s := range priorZeroSpecs() {
		sc := mustGenerate(t, s)
		tj, err := sc.Truth.MarshalIndent()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%x %x %s\n", sha256.Sum256(sc.OpenMetrics), sha256.Sum256(tj), s.Name)
	}
	got := b.String()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("output without a prior stage differs from %s (-want +got):\n%s", path, diff)
	}
}
