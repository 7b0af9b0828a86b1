package replay

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// benchData returns one hour of phase_requests_total for 10 series (5 pods
// by 2 phases) sampled every 10s from t0, in OpenMetrics text.
func benchData() []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	var b bytes.Buffer
	b.WriteString("# TYPE phase_requests counter\n")
	for pod := range 5 {
		for _, phase := range []string{"active", "draining"} {
			v := 0.0
			for i := range 360 {
				v += float64(rng.IntN(100))
				fmt.Fprintf(&b, "phase_requests_total{service=\"api\",pod_template_hash=\"p%d\",phase=%q} %g %d\n",
					pod, phase, v, t0.Unix()+10*int64(i))
			}
		}
	}
	b.WriteString("# EOF\n")
	return b.Bytes()
}

func BenchmarkQuery(b *testing.B) {
	s, err := Load(bytes.NewReader(benchData()))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const q = `sum(increase(phase_requests_total{phase!="active"}[5m]))`
	ts := t0.Add(45 * time.Minute)
	b.ReportAllocs()
	for b.Loop() {
		v, err := s.Query(b.Context(), q, ts)
		if err != nil || len(v) != 1 {
			b.Fatalf("Query = %v, %v", v, err)
		}
	}
}

func BenchmarkLoad(b *testing.B) {
	data := benchData()
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		s, err := Load(bytes.NewReader(data))
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
