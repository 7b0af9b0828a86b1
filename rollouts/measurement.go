package rollouts

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/phaseguard/phaseguard/analysis"
	"github.com/phaseguard/phaseguard/report"
)

// Metadata keys of a measurement. Per SLI, keys are prefixed with
// "sli.NAME.": verdict, reason, value, budget, samples, burn (per window,
// with its confidence bounds), and baseline and error when present.
const (
	keyVerdict     = "verdict"
	keyReason      = "reason"
	keyPolicy      = "policy"
	keyStage       = "stage"
	keyEvaluatedAt = "evaluatedAt"
	keyMaxBurn     = "maxBurn"
	keyConfidence  = "confidence"
	keyQueries     = "queries"
	keyQueryErrors = "queryErrors"

	// The canary's start (the engine's Since) and, when it could not be
	// read from the Rollout's AnalysisRuns, why.
	// What phaseguard lint finds in a policy that loads (an le spelling
	// one server version lacks, a ratio counted with rate()), which the
	// verdict may owe to it: lintFindings.
	keyPolicyLint = "policyLint"

	keySince     = "since"
	keySinceNote = "sinceNote"

	// Look mode: this look's number ("3/21", or "3" without a count),
	// when the stage's soak ends, and whether this look's hold is only
	// pending (Successful: the stage's end decides).
	keyLook        = "look"
	keyLookSoakEnd = "look.soakEndsAt"
	keyPending     = "pending"

	// Stage-mode state, read back by Resume.
	keyStageStart = "stage.startedAt"
	keyStageSince = "stage.since"
	keySoakEnd    = "stage.soakEndsAt"
	keyLooks      = "stage.looks"
	keyHolds      = "stage.holds"
	keyWorst      = "stage.worst"
)

// lintFindings renders a policy's lint findings (policies.Policy.Warnings)
// for metadata, which is bounded: their count and the first, whole
// (`phaseguard lint` on the policy gives the rest).
func lintFindings(ws []error) string {
	return fmt.Sprintf("%s of phaseguard lint, the first: %v", report.Plural(len(ws), "finding", "findings"), ws[0])
}

// verdictMetadata renders a verdict as measurement metadata: strings a
// release manager reads with kubectl: numbers, decisions, reasons and
// query errors. A server's error may quote a request's credentials: the
// plugin redacts and bounds the whole measurement before returning it
// (Plugin.finish).
func verdictMetadata(v *analysis.Verdict) map[string]string {
	md := map[string]string{
		keyVerdict:     string(v.Decision),
		keyReason:      v.Reason,
		keyPolicy:      v.Policy,
		keyEvaluatedAt: v.Time.UTC().Format(time.RFC3339),
		keyMaxBurn:     num(v.MaxBurn()),
		keyConfidence:  strconv.FormatFloat(v.Confidence, 'g', 6, 64),
		keyQueries:     strconv.Itoa(v.Queries),
		keyQueryErrors: strconv.Itoa(v.QueryErrors),
	}
	if v.Stage != "" {
		md[keyStage] = v.Stage
	}
	for i := range v.SLIs {
		s := &v.SLIs[i]
		k := "sli." + s.Name + "."
		md[k+"verdict"] = string(s.Decision)
		md[k+"reason"] = s.Reason
		md[k+"value"] = num(float64(s.Value))
		md[k+"budget"] = num(float64(s.Budget))
		md[k+"samples"] = count(float64(s.Samples))
		md[k+"burn"] = burns(s.Windows)
		if s.Baseline != nil {
			b := s.Baseline
			md[k+"baseline"] = fmt.Sprintf("stable %s: value %s, %s, burn %s, %s, worse %t, alsoBad %t",
				b.Hash, num(float64(b.Value)), report.Events(b.Samples), burns(b.Windows), report.PValue(b.PValue), b.Worse, b.AlsoBad)
		}
		if s.Error != "" {
			md[k+"error"] = s.Error
		}
	}
	return md
}

// burns renders windows as "15m=0.31 [0.12, 0.72], 5m=...": burn rate and
// its confidence bounds, longest window first.
func burns(ws []analysis.WindowResult) string {
	parts := make([]string, 0, len(ws))
	for _, w := range ws {
		parts = append(parts, fmt.Sprintf("%s=%s [%s, %s]", w.Window, num(float64(w.Burn)), num(float64(w.BurnLower)), num(float64(w.BurnUpper))))
	}
	return strings.Join(parts, ", ")
}

// num formats a value with 4 significant digits, "n/a" when there is
// none: a missing value never reads as zero.
func num[T ~float64](f T) string {
	x := float64(f)
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "n/a"
	}
	return strconv.FormatFloat(x, 'g', 4, 64)
}

// count formats an event count as report.Count does ("<1" for a
// fraction of one: increase() extrapolates), "n/a" when there is none.
func count(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "n/a"
	}
	return report.Count(analysis.Num(f))
}

// stageState is a stage-mode measurement's progress, kept in its metadata
// between calls.
type stageState struct {
	Start time.Time
	Looks int
	Holds int
	Worst analysis.Decision
	// Since is the canary's start (zero: unknown), SinceNote why it is
	// this run's own start; neither is kept between calls but Since.
	Since     time.Time
	SinceNote string
}

func (s stageState) write(md map[string]string, soakEnd time.Time) {
	md[keyStageStart] = s.Start.UTC().Format(time.RFC3339Nano)
	md[keySoakEnd] = soakEnd.UTC().Format(time.RFC3339)
	md[keyLooks] = strconv.Itoa(s.Looks)
	md[keyHolds] = strconv.Itoa(s.Holds)
	md[keyWorst] = string(s.Worst)
	if !s.Since.IsZero() {
		md[keyStageSince] = s.Since.UTC().Format(time.RFC3339Nano)
	}
}

// readState reads the stage state back from a measurement's metadata.
func readState(md map[string]string) (stageState, error) {
	var s stageState
	raw, ok := md[keyStageStart]
	if !ok {
		return s, fmt.Errorf("resume: %w (key %s)", errNoState, keyStageStart)
	}
	var err error
	if s.Start, err = time.Parse(time.RFC3339Nano, raw); err != nil {
		return s, fmt.Errorf("resume: metadata %s %q: not an RFC 3339 time", keyStageStart, raw)
	}
	if s.Looks, err = strconv.Atoi(md[keyLooks]); err != nil || s.Looks < 0 {
		return s, fmt.Errorf("resume: metadata %s %q: not a count", keyLooks, md[keyLooks])
	}
	if s.Holds, err = strconv.Atoi(md[keyHolds]); err != nil || s.Holds < 0 {
		return s, fmt.Errorf("resume: metadata %s %q: not a count", keyHolds, md[keyHolds])
	}
	if raw, ok := md[keyStageSince]; ok {
		if s.Since, err = time.Parse(time.RFC3339Nano, raw); err != nil {
			return s, fmt.Errorf("resume: metadata %s %q: not an RFC 3339 time", keyStageSince, raw)
		}
	}
	switch w := analysis.Decision(md[keyWorst]); w {
	case analysis.Pass, analysis.Hold, analysis.Fail:
		s.Worst = w
	default:
		return s, fmt.Errorf("resume: metadata %s %q: not a verdict", keyWorst, md[keyWorst])
	}
	return s, nil
}
