package policies

import (
	"embed"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// sel is the selector of one target on the metric convention of DESIGN.md.
const sel = `service="$service",pod_template_hash="$hash"`

// istioSel selects one target's requests in Istio's standard metrics,
// each counted once: by the calling proxy (reporter="source"), the only
// one that sees a request whose upstream was gone.
const istioSel = `reporter="source",destination_service_name="$service",destination_workload_namespace="$namespace",destination_version="$hash"`

// sliPresets are the built-in SLIs. The first seven follow phaseguard's
// metric convention; the rest read metrics users already have.
var sliPresets = map[string]SLI{
	"drain-failure": {
		Description: "requests served by an instance that is not active (init, draining, stopped)",
		Objective:   99.9,
		Ratio: &Ratio{
			Bad:   `sum(increase(phase_requests_total{` + sel + `,phase!="active"}[$window]))`,
			Total: `sum(increase(phase_requests_total{` + sel + `}[$window]))`,
		},
	},
	"flaps": {
		Description: "phase transitions back to an earlier phase (draining->active, active->init) per hour",
		Allowance:   2,
		Rate: &Rate{
			Events: `sum(increase(phase_transitions_total{` + sel + `,from=~"draining|active",to=~"active|init"}[$window]))`,
		},
	},
	"phase-mismatch": {
		Description: "observations where a consumer disagreed with the instance about its phase",
		Objective:   99.9,
		Ratio: &Ratio{
			Bad:   `sum(increase(phase_observations_total{` + sel + `,agree="false"}[$window]))`,
			Total: `sum(increase(phase_observations_total{` + sel + `}[$window]))`,
		},
	},
	"duplicate-processing": {
		Description: "jobs executed twice (two instances both believed they led)",
		Objective:   99.9,
		Ratio: &Ratio{
			Bad:   `sum(increase(phase_job_executions_total{` + sel + `,duplicate="true"}[$window]))`,
			Total: `sum(increase(phase_job_executions_total{` + sel + `}[$window]))`,
		},
	},
	"schema-errors": {
		Description: "requests that failed on a schema of the wrong migration phase",
		Objective:   99.9,
		Ratio: &Ratio{
			Bad:   `sum(increase(phase_schema_errors_total{` + sel + `}[$window]))`,
			Total: `sum(increase(phase_requests_total{` + sel + `}[$window]))`,
		},
	},
	"slow-propagation": {
		Description: "phase changes that took longer than 2 s to reach every consumer",
		Objective:   99,
		Ratio: &Ratio{
			// le is "2" in the Prometheus text format and "2.0" in OpenMetrics.
			Good:  `sum(increase(phase_propagation_seconds_bucket{` + sel + `,le=~"2|2\\.0"}[$window]))`,
			Total: `sum(increase(phase_propagation_seconds_count{` + sel + `}[$window]))`,
		},
	},
	"reconcile-retries": {
		Description: "reconcile retries per hour (controllers fighting over a phase)",
		Allowance:   60,
		Rate: &Rate{
			Events: `sum(increase(phase_reconcile_retries_total{` + sel + `}[$window]))`,
		},
	},
	"kube-readiness-flaps": {
		// resets() counts drops from ready to not ready: one per flap, and
		// none for a pod that becomes ready for the first time. The pods
		// are the target's by kube_pod_labels' label_rollouts_pod_template_hash,
		// which kube-state-metrics exports only when run with
		// --metric-labels-allowlist=pods=[rollouts-pod-template-hash].
		Description: "times per hour a pod of the target lost readiness, from kube-state-metrics",
		Allowance:   2,
		Rate: &Rate{
			Events: `sum(resets(kube_pod_status_ready{namespace="$namespace",condition="true"}[$window])` +
				` * on (namespace, pod) group_left () max by (namespace, pod) (kube_pod_labels{namespace="$namespace",label_rollouts_pod_template_hash="$hash"}))`,
		},
	},
	"istio-drain-503": {
		// reporter="source": with sidecars on both ends every request is
		// counted by the calling proxy and again by the destination's, but
		// a 503 that Envoy makes up because the upstream was gone (UF, UH,
		// ...) only by the calling proxy, which alone sees every request:
		// summing both reporters read half the 503 share. See README,
		// "Istio and Argo's pod-template hash" for destination_version.
		Description: "requests answered 503 by Envoy because the upstream was gone or draining, as the calling proxy saw them (Istio; destination_version must carry the pod template hash)",
		Objective:   99.9,
		Ratio: &Ratio{
			Bad:   `sum(increase(istio_requests_total{` + istioSel + `,response_code="503",response_flags=~"UH|UF|UC|URX|NR"}[$window]))`,
			Total: `sum(increase(istio_requests_total{` + istioSel + `}[$window]))`,
		},
	},
	"ingress-nginx-503": {
		Description: "requests answered 502/503 by ingress-nginx for the target's Service (set --service to the canary or stable Service name)",
		Objective:   99.9,
		Ratio: &Ratio{
			Bad:   `sum(increase(nginx_ingress_controller_requests{exported_namespace="$namespace",exported_service="$service",status=~"502|503"}[$window]))`,
			Total: `sum(increase(nginx_ingress_controller_requests{exported_namespace="$namespace",exported_service="$service"}[$window]))`,
		},
	},
}

// SLIPresetNames lists the built-in SLI presets.
func SLIPresetNames() []string { return slices.Sorted(maps.Keys(sliPresets)) }

//go:embed presets/*.yaml
var presetFiles embed.FS

// PresetNames lists the built-in policies.
func PresetNames() []string {
	entries, _ := presetFiles.ReadDir("presets")
	var out []string
	for _, e := range entries {
		out = append(out, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	return out
}

// IsPreset reports whether name is a built-in policy.
func IsPreset(name string) bool { return slices.Contains(PresetNames(), name) }

// Preset loads a built-in policy by name.
func Preset(name string) (*Policy, error) {
	if !IsPreset(name) {
		return nil, fmt.Errorf("unknown policy preset %q (known: %s)", name, strings.Join(PresetNames(), ", "))
	}
	data, err := presetFiles.ReadFile("presets/" + name + ".yaml")
	if err != nil {
		return nil, fmt.Errorf("read preset %q: %w", name, err)
	}
	return Load(data, "preset "+name)
}

// PresetYAML returns the YAML source of a built-in policy.
func PresetYAML(name string) ([]byte, error) {
	return presetFiles.ReadFile("presets/" + name + ".yaml")
}

// Missing is what a diagnosis of an SLI without data found missing in one
// of its selectors (analysis probes them).
type Missing int

// What a selector may miss.
const (
	// MissingMetric: no series of the metric name at all.
	MissingMetric Missing = iota + 1
	// MissingLabel: series of the metric, none with the label.
	MissingLabel
	// MissingValue: series with the label, none with the selector's value
	// of it (beside the selector's other matchers probed before it).
	MissingValue
)

// metricHints are advice on the metrics the presets read, for a reason
// that names what is missing: which exporter to scrape, which flag it
// needs, which value a label must carry.
var metricHints = []struct {
	metric, label string
	what          Missing
	text          string
}{
	{"kube_pod_status_ready", "", MissingMetric, "is kube-state-metrics running and scraped?"},
	{"kube_pod_labels", "", MissingMetric, "is kube-state-metrics running and scraped?"},
	{"kube_pod_labels", "label_rollouts_pod_template_hash", MissingLabel,
		"kube-state-metrics exports a pod label only when it is allow-listed: run it with --metric-labels-allowlist=pods=[rollouts-pod-template-hash]"},
	{"kube_pod_labels", "label_rollouts_pod_template_hash", MissingValue,
		"is the hash the Rollout's status.currentPodHash (canary) or status.stableRS (stable), and do its pods run?"},
	{"istio_requests_total", "", MissingMetric, "are the Istio proxies' metrics scraped (port 15020, path /stats/prometheus)?"},
	{"istio_requests_total", "reporter", MissingValue,
		"only the destination's proxy reports these requests, so their callers have no sidecar; the calling proxy is the only one that sees a 503 whose upstream was gone"},
	{"istio_requests_total", "destination_service_name", MissingValue,
		"the service must be the name of the Kubernetes Service the callers address"},
	{"istio_requests_total", "destination_version", MissingValue,
		"Istio takes destination_version from the destination pod's app.kubernetes.io/version or version label, which Argo does not set to the pod-template hash: see the README, \"Istio and Argo's pod-template hash\""},
	{"nginx_ingress_controller_requests", "", MissingMetric, "is the ingress-nginx controller's metrics port (10254) scraped?"},
	{"nginx_ingress_controller_requests", "exported_service", MissingValue,
		"the service must be the name of the Kubernetes Service the Ingress routes to"},
}

// Hint returns advice for a reason saying that metric misses something
// (label is empty for MissingMetric), or "" when there is none.
func Hint(metric, label string, what Missing) string {
	for _, h := range metricHints {
		if h.metric == metric && h.label == label && h.what == what {
			return h.text
		}
	}
	return ""
}
