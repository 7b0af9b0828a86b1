package rollouts

import (
	"crypto/sha256"
	"sync"

	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"

	"github.com/phaseguard/phaseguard/internal/redact"
)

// call is one call of the controller about one measurement. What it
// returns and logs is redacted with what it used, and nothing else: the
// secret arguments its metric refers to, the set of the client it queried
// through (an operator connection's own, or, for a template's address,
// its client's own: the credentials it was given and every header value
// it sent), and the Kubernetes client's credentials.
//
// Never with another template's secrets, nor with an operator
// connection's that the call did not use: one team's secret
// "stage.startedAt" or "canary-10" would mark that text in every other
// team's measurements, and a template pointing at its own server, which
// echoes candidate strings back in its errors, would learn which of them
// are credentials the plugin holds from the marks.
type call struct {
	ar     *v1alpha1.AnalysisRun
	metric v1alpha1.Metric
	args   *redact.Set // the metric's secret arguments
	client *redact.Set // the client's set, once known
	kube   *redact.Set // the Kubernetes client's credentials
}

func (p *Plugin) newCall(ar *v1alpha1.AnalysisRun, metric v1alpha1.Metric) *call {
	c := &call{ar: ar, metric: metric, args: redact.New(), kube: p.kube}
	// Before anything can fail: an error may quote what the controller
	// resolved from these.
	learnSecretArgs(c.args, ar, metric.Name)
	return c
}

// secrets returns the call's set as it is now.
func (c *call) secrets() *redact.Set { return redact.Union(c.args, c.client, c.kube) }

// logFields returns the fields of a log line about the call, kv after
// the metric and the AnalysisRun, every string value redacted with the
// call's set: the plugin's log writer redacts only the operator's and the
// Kubernetes client's credentials.
func (c *call) logFields(kv ...any) []any {
	f := []any{"metric", c.metric.Name}
	if c.ar != nil {
		f = append(f, "analysisrun", c.ar.Namespace+"/"+c.ar.Name)
	}
	f = append(f, kv...)
	set := c.secrets()
	for i := 1; i < len(f); i += 2 {
		if s, ok := f[i].(string); ok {
			f[i] = set.String(s)
		}
	}
	return f
}

// ownKeys are the metadata keys whose values the plugin formats from
// numbers, times and its own words. Resume reads the stage state back
// from them; Terminate reads dryRun. Their values are kept as written:
// redaction must never break what Resume reads (a template's secret
// equal to a time or a count would), and they hold no text of a server
// or a template.
var ownKeys = map[string]bool{
	keyStageStart: true, keySoakEnd: true, keyLooks: true, keyHolds: true, keyWorst: true,
	keyVerdict: true, "mode": true, "dryRun": true, "wouldBe": true, "terminated": true,
	keyEvaluatedAt: true, keyMaxBurn: true, keyConfidence: true, keyQueries: true, keyQueryErrors: true,
	"evaluationMs": true, "plugin": true,
}

// redactMetadata returns md with every value redacted by set except
// those of ownKeys. Keys are never redacted: they are the plugin's words
// ("stage.startedAt", "reason"), and an SLI's keys (sli.NAME.field) are
// left out whole when NAME, a template's text, holds a secret of set.
func redactMetadata(set *redact.Set, md map[string]string) map[string]string {
	if md == nil {
		return nil
	}
	out := make(map[string]string, len(md))
	for k, v := range md {
		if ownKeys[k] {
			out[k] = v
			continue
		}
		if name, _, ok := sliKey(k); ok && set.Has(name) {
			continue
		}
		out[k] = set.String(v)
	}
	return out
}

// metadataSecrets remembers, for GetMetadata, which has no AnalysisRun,
// the set each resolved metric config was last redacted with: the
// controller calls GetMetadata with the metric it has just called Run
// with. A resolved config holds the values of the secret arguments it
// uses, so configs of different tenants with different secrets never
// share an entry.
type metadataSecrets struct {
	mu   sync.Mutex
	sets *lru[*redact.Set]
}

func newMetadataSecrets() *metadataSecrets {
	return &metadataSecrets{sets: newLRU[*redact.Set](4 * cacheSize)}
}

func metricKey(metric v1alpha1.Metric) string {
	sum := sha256.Sum256(metric.Provider.Plugin[Name])
	return metric.Name + "\x00" + string(sum[:])
}

func (m *metadataSecrets) put(metric v1alpha1.Metric, set *redact.Set) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sets.put(metricKey(metric), set)
}

func (m *metadataSecrets) get(metric v1alpha1.Metric) *redact.Set {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, _ := m.sets.get(metricKey(metric))
	return s
}
