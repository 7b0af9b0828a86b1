package promtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPromText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    string // all chunks joined
		samples int
		first   int64
		last    int64
		wantErr string
	}{
		{
			name: "counter, gauge, histogram, escaped label values, fractional seconds",
			in: "# TYPE req counter\n" +
				"req_total{code=\"503\",path=\"a\\\"b\\\\c\\nd\"} 1.5 10.25\n" +
				"# TYPE g gauge\ng 2 11\ng NaN 12\ng +Inf 13\n" +
				"# TYPE h histogram\nh_bucket{le=\"2.0\"} 1 12\nh_bucket{le=\"+Inf\"} 3 12\nh_count 3 12\nh_sum 0.5 12\n" +
				"# EOF\n",
			want: "req_total{code=\"503\",path=\"a\\\"b\\\\c\\nd\"} 1.5 10250\n" +
				"g 2 11000\ng NaN 12000\ng +Inf 13000\n" +
				"h_bucket{le=\"2.0\"} 1 12000\nh_bucket{le=\"+Inf\"} 3 12000\nh_count 3 12000\nh_sum 0.5 12000\n",
			samples: 8, first: 10250, last: 13000,
		},
		{
			name:    "earliest and latest are not first and last in the file",
			in:      "# TYPE g gauge\ng{a=\"1\"} 1 50\ng{a=\"2\"} 1 20\ng{a=\"2\"} 1 70\n# EOF\n",
			want:    "g{a=\"1\"} 1 50000\ng{a=\"2\"} 1 20000\ng{a=\"2\"} 1 70000\n",
			samples: 3, first: 20000, last: 70000,
		},
		{name: "no timestamp", in: "# TYPE x gauge\nx 1\n# EOF\n", wantErr: "series x: sample has no timestamp"},
		{name: "no samples", in: "# EOF\n", wantErr: "no samples"},
		{name: "no EOF", in: "# TYPE x gauge\nx 1 1\n", wantErr: "data does not end with # EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := promText([]byte(tt.in), importChunk)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("promText error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("promText: %v", err)
			}
			if diff := cmp.Diff(tt.want, string(bytes.Join(got.chunks, nil))); diff != "" {
				t.Errorf("text mismatch (-want +got):\n%s", diff)
			}
			if got.samples != tt.samples || got.first != tt.first || got.last != tt.last {
				t.Errorf("samples %d from %d to %d, want %d from %d to %d", got.samples, got.first, got.last, tt.samples, tt.first, tt.last)
			}
		})
	}
}

// TestPromTextChunks checks that chunks split at line ends and stay
// within the limit unless one line is longer.
func TestPromTextChunks(t *testing.T) {
	t.Parallel()
	var in strings.Builder
	in.WriteString("# TYPE g gauge\n")
	for i := range 10 {
		fmt.Fprintf(&in, "g{i=\"%d\"} 1 %d\n", i, 100+i) // `g{i="0"} 1 100000\n` out: 18 bytes
	}
	in.WriteString("# EOF\n")
	const line = 18
	for _, chunk := range []int{1, line, 40, 1000} {
		d, err := promText([]byte(in.String()), chunk)
		if err != nil {
			t.Fatal(err)
		}
		lines := 0
		for _, c := range d.chunks {
			if !bytes.HasSuffix(c, []byte("\n")) {
				t.Errorf("chunk %d: %q does not end a line", chunk, c)
			}
			n := bytes.Count(c, []byte("\n"))
			if len(c) > chunk && n > 1 {
				t.Errorf("chunk %d: %d bytes in %d lines", chunk, len(c), n)
			}
			lines += n
		}
		if lines != 10 {
			t.Errorf("chunk %d: %d lines in all chunks, want 10", chunk, lines)
		}
		perChunk := max(1, chunk/line)
		if want := (10 + perChunk - 1) / perChunk; len(d.chunks) != want {
			t.Errorf("chunk %d: %d chunks, want %d", chunk, len(d.chunks), want)
		}
	}
}

// TestStartVictoriaMetrics loads two sources, one a file, into a real
// VictoriaMetrics and reads every kind of sample back at its timestamp.
func TestStartVictoriaMetrics(t *testing.T) {
	t.Parallel()
	const t0 = 1767225600 // 2026-01-01T00:00:00Z
	path := filepath.Join(t.TempDir(), "a.om")
	a := fmt.Sprintf("# TYPE req counter\n"+
		"req_total{code=\"503\",path=\"a\\\"b\\\\c\"} 7 %d\n"+
		"req_total{code=\"503\",path=\"a\\\"b\\\\c\"} 9 %d.5\n"+
		"# TYPE h histogram\nh_bucket{le=\"2.0\"} 1 %d\nh_bucket{le=\"+Inf\"} 3 %d\nh_count 3 %d\nh_sum 0.5 %d\n"+
		"# EOF\n", t0, t0+15, t0, t0, t0, t0)
	if err := os.WriteFile(path, []byte(a), 0o644); err != nil {
		t.Fatal(err)
	}
	// 40 days later: another monthly partition.
	b := fmt.Sprintf("# TYPE g gauge\ng 4 %d\n# EOF\n", t0+40*86400)
	s := StartVictoriaMetrics(t, BackfillFile(path), Backfill([]byte(b)))

	// Each query is 1ms after its sample: VictoriaMetrics 1.79 does not
	// see samples at the exact time of the earliest sample of a monthly
	// partition (t0 and g's; see TestCountingByBackend).
	for _, c := range []struct {
		query string
		at    string
		want  string // metric and value of the one result
	}{
		{`req_total`, fmt.Sprintf("%d.001", t0), `{"__name__":"req_total","code":"503","path":"a\"b\\c"} 7`},
		{`req_total`, fmt.Sprintf("%d.501", t0+15), `{"__name__":"req_total","code":"503","path":"a\"b\\c"} 9`},
		{`h_bucket{le="2.0"}`, fmt.Sprintf("%d.001", t0), `{"__name__":"h_bucket","le":"2.0"} 1`},
		{`h_bucket{le="+Inf"}`, fmt.Sprintf("%d.001", t0), `{"__name__":"h_bucket","le":"+Inf"} 3`},
		{`h_sum`, fmt.Sprintf("%d.001", t0), `{"__name__":"h_sum"} 0.5`},
		{`g`, fmt.Sprintf("%d.001", t0+40*86400), `{"__name__":"g"} 4`},
	} {
		var resp struct {
			Data struct {
				Result []struct {
					Metric json.RawMessage    `json:"metric"`
					Value  [2]json.RawMessage `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		q := url.Values{"query": {c.query}, "time": {c.at}}
		if err := s.getJSON(t.Context(), "/api/v1/query", q, &resp); err != nil {
			t.Fatalf("%s at %s: %v", c.query, c.at, err)
		}
		var got []string
		for _, r := range resp.Data.Result {
			var v string
			_ = json.Unmarshal(r.Value[1], &v)
			got = append(got, string(r.Metric)+" "+v)
		}
		if diff := cmp.Diff([]string{c.want}, got); diff != "" {
			t.Errorf("%s at %s (-want +got):\n%s", c.query, c.at, diff)
		}
	}
}

// TestVictoriaMetricsShortCount checks that a load the server does not
// count in full fails, naming both counts, once the count has settled.
func TestVictoriaMetricsShortCount(t *testing.T) {
	t.Parallel()
	data := []byte("# TYPE g gauge\ng 1 1767225600\ng 2 1767225615\n# EOF\n")
	s := StartVictoriaMetrics(t, Backfill(data))
	d, err := promText(data, importChunk)
	if err != nil {
		t.Fatal(err)
	}
	d.samples++ // one the server never got
	err = s.waitForSamples(t.Context(), d)
	if err == nil {
		t.Fatal("waitForSamples succeeded with a sample missing")
	}
	if want := `want 3 samples, got 2 for 5s`; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not contain %q", err, want)
	}
}
