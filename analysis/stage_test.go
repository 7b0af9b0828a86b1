package analysis

import (
	"testing"
	"time"
)

func TestStageDecided(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 1, 1, 0, 10, 0, 0, time.UTC)
	const soak = 10 * time.Minute
	tests := []struct {
		d     Decision
		after time.Duration
		want  bool
	}{
		{Fail, time.Minute, true},
		{Pass, time.Minute, false},
		{Hold, 9 * time.Minute, false},
		{Pass, soak, true},
		{Hold, soak + time.Second, true},
	}
	for _, tt := range tests {
		v := &Verdict{Decision: tt.d, Time: start.Add(tt.after)}
		if got := StageDecided(v, start, soak); got != tt.want {
			t.Errorf("%s at +%s: decided %v, want %v", tt.d, tt.after, got, tt.want)
		}
	}
}

func TestHoldPending(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 1, 1, 0, 10, 0, 0, time.UTC)
	const soak = 10 * time.Minute
	tests := []struct {
		name  string
		d     Decision
		after time.Duration
		soak  time.Duration
		last  bool
		want  bool
	}{
		{"early hold waits", Hold, time.Minute, soak, false, true},
		{"hold just before the soak ends waits", Hold, soak - time.Second, soak, false, true},
		{"hold at the soak's end is final", Hold, soak, soak, false, false},
		{"hold after the soak is final", Hold, soak + time.Minute, soak, false, false},
		{"hold at the last planned look is final", Hold, time.Minute, soak, true, false},
		{"no soak: every hold final", Hold, time.Minute, 0, false, false},
		{"fail is never pending", Fail, time.Second, soak, false, false},
		{"pass is not a pending hold", Pass, time.Minute, soak, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v := &Verdict{Decision: tt.d, Time: start.Add(tt.after)}
			if got := HoldPending(v, start, tt.soak, tt.last); got != tt.want {
				t.Errorf("HoldPending(%s at +%s, soak %s, last %v) = %v, want %v", tt.d, tt.after, tt.soak, tt.last, got, tt.want)
			}
		})
	}
}
