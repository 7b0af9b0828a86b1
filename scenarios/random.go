package scenarios

import (
	"hash/fnv"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/stat/distuv"
)

// rng is a seeded random stream. Every purpose (a pod's requests, the
// traffic shape, pod names...) draws from its own stream, so that changing
// one part of a Spec, such as adding a fault, leaves the other draws alone.
type rng struct {
	src *rand.PCG
	*rand.Rand
}

func newRNG(seed int64, purpose string) *rng {
	h := fnv.New64a()
	h.Write([]byte(purpose))
	src := rand.NewPCG(uint64(seed), h.Sum64())
	return &rng{src: src, Rand: rand.New(src)}
}

// poisson draws a Poisson count with mean lambda.
func (r *rng) poisson(lambda float64) int64 {
	if !(lambda > 0) {
		return 0
	}
	return int64(distuv.Poisson{Lambda: lambda, Src: r.src}.Rand())
}

// binomial draws the number of successes of n trials with chance p each.
func (r *rng) binomial(n int64, p float64) int64 {
	switch {
	case n <= 0 || !(p > 0):
		return 0
	case p >= 1:
		return n
	}
	return int64(distuv.Binomial{N: float64(n), P: p, Src: r.src}.Rand())
}

// mixed draws how many of n events are bad when each is bad by a fault with
// chance fault, else by the background with chance bg.
func (r *rng) mixed(n int64, fault, bg float64) int64 {
	f := r.binomial(n, fault)
	return f + r.binomial(n-f, bg)
}

// lognormal draws exp(N(log(median), sigma²)).
func (r *rng) lognormal(median, sigma float64) float64 {
	return median * math.Exp(sigma*r.NormFloat64())
}

// uniform draws from [lo, hi).
func (r *rng) uniform(lo, hi float64) float64 { return lo + (hi-lo)*r.Float64() }

// logUniform draws from [lo, hi) uniformly on a log scale.
func (r *rng) logUniform(lo, hi float64) float64 {
	return math.Exp(r.uniform(math.Log(lo), math.Log(hi)))
}

// Kubernetes builds generated names from this alphabet (no vowels, no
// look-alike characters): k8s.io/apimachinery/pkg/util/rand.
const nameAlphabet = "bcdfghjklmnpqrstvwxz2456789"

// suffix draws a random name suffix of n characters.
func (r *rng) suffix(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = nameAlphabet[r.IntN(len(nameAlphabet))]
	}
	return string(b)
}
