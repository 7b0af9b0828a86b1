package analysis

import (
	"math"

	"gonum.org/v1/gonum/mathext"
	"gonum.org/v1/gonum/stat/distuv"
)

// The per-look building blocks. Each is an exact (conservative) one-sided
// bound at level a; the engine chooses a so that the union over every test
// of every look of a stage stays under the policy's alpha (see spend).
//
// Counts come from PromQL increase(), which extrapolates and so is not
// always an integer; the Beta and Gamma forms below accept real counts.

// RatioBounds returns the one-sided Clopper–Pearson lower and upper bounds,
// each at level a, on the bad share of total events; a two-sided interval
// at level alpha is RatioBounds(bad, total, alpha/2).
func RatioBounds(bad, total, a float64) (lo, hi float64) {
	return ratioLower(bad, total, a), ratioUpper(bad, total, a)
}

// ratioLower is the one-sided Clopper–Pearson lower bound on a binomial
// proportion with bad events out of total: the a-quantile of
// Beta(bad, total-bad+1). Clopper & Pearson, Biometrika 26 (1934).
func ratioLower(bad, total, a float64) float64 {
	if bad <= 0 || total <= 0 {
		return 0
	}
	if bad >= total {
		return math.Pow(a, 1/total)
	}
	return distuv.Beta{Alpha: bad, Beta: total - bad + 1}.Quantile(a)
}

// ratioUpper is the one-sided Clopper–Pearson upper bound: the
// (1-a)-quantile of Beta(bad+1, total-bad).
func ratioUpper(bad, total, a float64) float64 {
	if total <= 0 {
		return 1
	}
	if bad >= total {
		return 1
	}
	if bad <= 0 {
		return 1 - math.Pow(a, 1/total)
	}
	return distuv.Beta{Alpha: bad + 1, Beta: total - bad}.Quantile(1 - a)
}

// countLower is the one-sided exact Poisson (Garwood, Biometrika 28, 1936)
// lower bound on the mean of a count k: the a-quantile of Gamma(k, 1).
func countLower(k, a float64) float64 {
	if k <= 0 {
		return 0
	}
	return distuv.Gamma{Alpha: k, Beta: 1}.Quantile(a)
}

// countUpper is the one-sided Garwood upper bound: the (1-a)-quantile of
// Gamma(k+1, 1).
func countUpper(k, a float64) float64 {
	return distuv.Gamma{Alpha: math.Max(k, 0) + 1, Beta: 1}.Quantile(1 - a)
}

// worseP is the one-sided p-value of "the canary's rate is no more than
// ratio times the stable's", from the conditional binomial test of two
// Poisson or binomial counts (Lehmann & Romano, Testing Statistical
// Hypotheses, 4.5): given m = kc+ks bad events in all, under the null the
// canary's share is Binomial(m, π) with π = ratio·nc / (ratio·nc + ns),
// where nc and ns are the canary's and the stable's exposures (requests, or
// hours). P(X >= kc) = I_π(kc, m-kc+1), the regularised incomplete beta.
func worseP(kc, nc, ks, ns, ratio float64) float64 {
	if kc <= 0 || nc <= 0 || ns <= 0 {
		return 1
	}
	m := kc + math.Max(ks, 0)
	pi := ratio * nc / (ratio*nc + ns)
	if pi >= 1 {
		return 1
	}
	return mathext.RegIncBeta(kc, m-kc+1, pi)
}

// spend splits alpha evenly over every test of every planned look of a
// stage (Bonferroni). A union bound holds whatever the dependence between
// tests, which matters here: consecutive looks share most of their sliding
// windows, so tests built for independent samples or for a growing sample
// (group-sequential boundaries, confidence sequences over cumulative data)
// do not apply to them directly. The cost is power, not validity: the
// per-test level a = alpha / (looks × tests) moves the one-sided bound from
// about 1.6 to about 3.7 standard errors for 20 looks of 20 tests, a small
// price when a fault burns ten times its budget.
func spend(alpha float64, looks, tests int) float64 {
	return alpha / float64(max(looks, 1)*max(tests, 1))
}
