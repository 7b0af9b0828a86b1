// Package bench measures phaseguard's decisions and cost against what users
// run today, on the same canaries.
//
// The benchmark draws a seeded corpus of healthy and faulty canaries
// (package scenarios), replays each one in the embedded PromQL engine
// (package replay) and, at every look of one policy stage, records
//
//   - phaseguard's verdict (package analysis, with the policy as given,
//     canary compared with stable), and
//   - the instant query an Argo Rollouts AnalysisTemplate or a Flagger
//     MetricTemplate would send for each SLI: the SLI's bad ratio (or events
//     per hour) over a fixed window, as one number, NaN or no result.
//
// The baselines' decisions are then replayed from those query results for
// every threshold of a sweep ([Argo], [Flagger]): the query does not depend
// on the threshold, so each scenario is queried once. [Score] turns the
// observations into the figures of BENCHMARKS.md: false rollbacks on
// healthy canaries, recall by fault kind and burn, detection latency, holds,
// and each baseline's trade-off curve; [Cost] times evaluations against a
// real Prometheus server.
//
// Everything that decides is deterministic in the seed: the same seed gives
// the same decision figures on any machine, whatever the number of workers.
package bench
