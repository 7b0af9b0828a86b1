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
