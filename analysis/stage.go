package analysis

import "time"

// StageDecided is the rule for a stage watched look by look (the Argo
// plugin's stage mode, the Action's wait mode, the CLI demo): the first
// failing look fails the stage at once; otherwise the stage is decided by
// the first look at or after the end of its soak, which began at start.
// A look before that, pass or hold, only says how the stage is going.
func StageDecided(v *Verdict, start time.Time, soak time.Duration) bool {
	return v.Decision == Fail || !v.Time.Before(start.Add(soak))
}

// HoldPending reports whether a hold is only "not yet": v holds at a look
// of a stage that began at start and soaks soak, before the soak ends and
// before the stage's last planned look (last). Thin evidence early in a
// stage (a canary minutes old has few requests, a rate SLI needs minutes
// to rule out a burn) is no reason to call a human; a stage that ends
// without the evidence to pass is. Callers that report every look on its
// own (the Argo plugin's look mode) report a pending hold as "go on" and
// the hold at the stage's end as a hold; a fail is never pending, so a
// fault still stops the stage at the first look that shows it
// ([StageDecided]). A zero soak makes every hold final.
func HoldPending(v *Verdict, start time.Time, soak time.Duration, last bool) bool {
	return v.Decision == Hold && !last && !StageDecided(v, start, soak)
}
