package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestTimeFlags: --at, --since, --from and --to refuse NaN, infinities and
// times outside 1970..9999, naming the flag, before any query is sent.
func TestTimeFlags(t *testing.T) {
	t.Parallel()
	var queries atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		queries.Add(1)
		http.Error(w, "no queries expected", http.StatusTeapot)
	}))
	t.Cleanup(srv.Close)
	live := []string{"--prometheus", srv.URL, "--service", "checkout", "--canary-hash", "abc", "--timeout", "2s"}
	tests := []struct {
		cmd, flag, value, want string
	}{
		{"evaluate", "at", "NaN", "not a time"},
		{"evaluate", "at", "nan", "not a time"},
		{"evaluate", "at", "Inf", "not a time"},
		{"evaluate", "at", "-Inf", "not a time"},
		{"evaluate", "at", "+Infinity", "not a time"},
		{"evaluate", "at", "1e400", "out of range"},
		{"evaluate", "at", "-1", "out of range"},
		{"evaluate", "at", "253402300800", "out of range"},
		{"evaluate", "at", "1767225600000", "out of range: Unix seconds from 0 to 253402300799 (year 1970 to 9999); 1767225600000 looks like milliseconds, which is 2026-01-01T00:00:00Z"},
		{"evaluate", "at", "1969-12-31T23:59:59Z", "out of range: year 1970 to 9999"},
		{"evaluate", "at", "yesterday", "want RFC 3339"},
		{"evaluate", "since", "NaN", "not a time"},
		{"evaluate", "since", "+Inf", "not a time"},
		{"evaluate", "since", "-1e300", "out of range"},
		{"evaluate", "since", "1767225600000", "out of range: Unix seconds from 0 to 253402300799 (year 1970 to 9999); 1767225600000 looks like milliseconds"},
		{"backtest", "from", "NaN", "not a time"},
		{"backtest", "to", "Inf", "not a time"},
		{"backtest", "to", "1e19", "out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.cmd+" --"+tt.flag+" "+tt.value, func(t *testing.T) {
			t.Parallel()
			args := append([]string{tt.cmd}, live...)
			if tt.cmd == "backtest" {
				// The other end of the range is valid.
				args = append(args, "--from", "1767225600", "--to", "1767226200")
			}
			args = append(args, "--"+tt.flag+"="+tt.value)
			code, out, errOut := runCLI(t, args...)
			want := "--" + tt.flag + " " + `"` + tt.value + `": ` + tt.want
			if code != exitError || !strings.Contains(unwrapped(errOut), want) {
				t.Errorf("exit %d (want %d), stderr %q, want it to contain %q\nstdout: %s", code, exitError, errOut, want, out)
			}
		})
	}
	// Valid values in every form pass the flag check (and then query).
	for _, at := range []string{"1767225600", "1767225600.25", "2026-01-01T00:00:00Z", "0", "253402300799"} {
		if _, err := parseTime("at", at, time.Time{}); err != nil {
			t.Errorf("--at %s: %v", at, err)
		}
	}
	if got, _ := parseTime("at", "1767225600.25", time.Time{}); !got.Equal(time.Unix(1767225600, 250e6)) {
		t.Errorf("--at 1767225600.25 = %s", got)
	}
	// Tests run in parallel: count only once they are all done.
	t.Cleanup(func() {
		if n := queries.Load(); n != 0 {
			t.Errorf("%d queries reached the server; want none", n)
		}
	})
}
