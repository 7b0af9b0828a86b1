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
