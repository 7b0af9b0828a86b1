// Package scenarios generates seeded, realistic canary-rollout replay data.
//
// A [Spec] describes one service under a canary rollout: a stable and a
// canary ReplicaSet (told apart by their pod template hash), their traffic,
// the background rate of phase-flip errors every healthy service has, pod
// restarts, scrape gaps and at most one injected [Fault]. [Generate] turns a
// Spec into OpenMetrics text with timestamps, terminated by "# EOF": the
// format that `promtool tsdb create-blocks-from openmetrics` backfills and
// that the in-process PromQL engine replays (see "Replay data" in
// DESIGN.md), together with the [Truth] a benchmark scores verdicts against.
//
// Every count in the output is an integer event count drawn from Poisson
// and binomial distributions with a PCG generator seeded by Spec.Seed, so
// the data carries real sampling noise, yet the same Spec always yields the
// same bytes.
//
// The series follow the metric convention of DESIGN.md. Every phase metric
// carries the labels namespace, service, pod_template_hash and pod:
//
//	phase_requests_total{phase}                   counter, requests by phase of the serving instance
//	phase_transitions_total{from,to}              counter, phase transitions
//	phase_observations_total{consumer,agree}      counter, phase observations by consumers
//	phase_job_executions_total{duplicate}         counter, job executions
//	phase_schema_errors_total                     counter, requests that hit a schema error
//	phase_propagation_seconds{le}                 histogram, seconds until a phase change is seen by all consumers
//	phase_reconcile_retries_total                 counter, reconcile retries
//
// and, as kube-state-metrics and Istio export them,
//
//	kube_pod_status_ready{namespace,pod,condition="true"}                         gauge 0/1
//	kube_pod_labels{namespace,pod,label_app,label_rollouts_pod_template_hash}     gauge 1
//	istio_requests_total{reporter="source",destination_service_name,
//	    destination_workload_namespace,destination_version,response_code,response_flags}  counter
//
// where destination_version holds the pod template hash.
//
// Real exporters and servers are messier than the convention, and a Spec
// can say so (see "What a response means" in DESIGN.md): labelled counter
// children created on their first event instead of at zero
// (Spec.LazyChildren), pods that die and are born mid-stage and container
// restarts that reset counters (Spec.Restarts), scrape gaps (Spec.Gaps),
// missing newest minutes (Spec.Cutoffs) and a canary build that renamed or
// dropped an export (Spec.Drops). [Truth.Answer] states the right decision
// for each. A canary judged at a later stage of its rollout has served the
// earlier ones: Spec.Prior and Spec.PriorWeight give it a prior stage at a
// lower weight before the stage judged (Truth.CanaryStart).
//
// The package embeds a few demo scenarios ([Demo], [Lookup]); they are
// regenerated with `go generate ./scenarios/`.
package scenarios
