package rollouts

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/phaseguard/phaseguard/internal/redact"
)

// TestRedactMetadata: keys are never redacted and the plugin's own values
// (the stage state Resume reads, counts, times, verdicts) are kept as
// written, even when a secret equals them; every other value is
// redacted; an SLI named after a secret is left out whole.
func TestRedactMetadata(t *testing.T) {
	t.Parallel()
	const start = "2026-03-02T12:00:00.5Z"
	set := redact.New("stage.startedAt", start, "canary-10", "reason", "token-sli", "passed")
	md := map[string]string{
		keyStageStart: start, keySoakEnd: "2026-03-02T12:10:00Z", keyLooks: "2", keyHolds: "0", keyWorst: "pass",
		keyVerdict: "pass", "evaluationMs": "12.5",
		keyStage: "canary-10", keyReason: "all SLIs passed in canary-10",
		"sli.errors.reason":    "passed",
		"sli.token-sli.reason": "x", "sli.token-sli.verdict": "pass",
	}
	want := map[string]string{
		keyStageStart: start, keySoakEnd: "2026-03-02T12:10:00Z", keyLooks: "2", keyHolds: "0", keyWorst: "pass",
		keyVerdict: "pass", "evaluationMs": "12.5",
		keyStage: redact.Mark, keyReason: "all SLIs " + redact.Mark + " in " + redact.Mark,
		"sli.errors.reason": redact.Mark,
	}
	got := redactMetadata(set, md)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("redactMetadata (-want +got):\n%s", diff)
	}
	if _, err := readState(got); err != nil {
		t.Errorf("the stage state no longer reads: %v", err)
	}
	if redactMetadata(set, nil) != nil {
		t.Error("nil metadata became non-nil")
	}
}
