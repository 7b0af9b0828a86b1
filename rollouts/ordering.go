package rollouts

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	argoclient "github.com/argoproj/argo-rollouts/pkg/client/clientset/versioned/typed/rollouts/v1alpha1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/phaseguard/phaseguard/internal/redact"
	"github.com/phaseguard/phaseguard/internal/redirect"
	"github.com/phaseguard/phaseguard/policies"
)

// Labels and annotations the Argo Rollouts controller puts on the
// AnalysisRuns it creates for a Rollout.
const (
	// LabelPodTemplateHash holds the pod template hash of the ReplicaSet
	// being analysed (v1alpha1.DefaultRolloutUniqueLabelKey).
	LabelPodTemplateHash = v1alpha1.DefaultRolloutUniqueLabelKey
	// AnnotationRevision holds the Rollout's revision.
	AnnotationRevision = "rollout.argoproj.io/revision"
)

// AnalysisRunLister lists AnalysisRuns. Stage ordering needs get and list
// on analysisruns.argoproj.io in the Rollout's namespace: the controller's
// own service account has them.
type AnalysisRunLister interface {
	ListAnalysisRuns(ctx context.Context, namespace, labelSelector string) ([]v1alpha1.AnalysisRun, error)
}

// KubernetesAnalysisRuns lists AnalysisRuns through the Kubernetes API with
// Argo Rollouts' generated typed client (not the whole clientset, whose
// discovery client drags every Kubernetes API type into the plugin).
type KubernetesAnalysisRuns struct {
	client argoclient.ArgoprojV1alpha1Interface
}

// NewKubernetesAnalysisRuns returns a lister for the cluster cfg points to.
// Its client follows redirects only within the API server's origin:
// client-go adds the controller's credentials in its transport, so
// net/http would send them to any host a redirect names.
func NewKubernetesAnalysisRuns(cfg *rest.Config) (*KubernetesAnalysisRuns, error) {
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	cs, err := argoclient.NewForConfigAndClient(cfg, redirect.Client(hc))
	if err != nil {
		return nil, err
	}
	return &KubernetesAnalysisRuns{client: cs}, nil
}

// ListAnalysisRuns lists the AnalysisRuns of namespace that match
// labelSelector.
func (k *KubernetesAnalysisRuns) ListAnalysisRuns(ctx context.Context, namespace, labelSelector string) ([]v1alpha1.AnalysisRun, error) {
	l, err := k.client.AnalysisRuns(namespace).List(ctx, metav1.ListOptions{LabelSelector: labelSelector})
	if err != nil {
		return nil, err
	}
	return l.Items, nil
}

// defaultAnalysisRuns connects with KUBECONFIG when it is set (tests, a
// plugin run outside the cluster), else with the pod's service account.
// Its credentials are added to each of sets.
func defaultAnalysisRuns(sets ...*redact.Set) (AnalysisRunLister, error) {
	var cfg *rest.Config
	var err error
	if os.Getenv("KUBECONFIG") == "" {
		cfg, err = rest.InClusterConfig()
	}
	if cfg == nil {
		cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(clientcmd.NewDefaultClientConfigLoadingRules(), &clientcmd.ConfigOverrides{}).ClientConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("stage ordering: no Kubernetes credentials (not in a cluster and no usable KUBECONFIG): %w; set stageOrdering: false to turn the check off", err)
	}
	cfg.UserAgent = "phaseguard-rollouts-plugin"
	learnRESTConfig(cfg, sets...)
	return NewKubernetesAnalysisRuns(cfg)
}

// learnRESTConfig adds the Kubernetes client's credentials to each of
// sets: the bearer token (and the token file's contents: the service account
// token), the basic-auth password, the client key, and, through a
// transport wrapper below client-go's authentication, every Authorization
// header it sends (a rotated token, one from an exec plugin).
func learnRESTConfig(cfg *rest.Config, sets ...*redact.Set) {
	for _, secrets := range sets {
		secrets.Add(cfg.BearerToken, redact.ReadFile(cfg.BearerTokenFile), string(cfg.KeyData), redact.ReadFile(cfg.KeyFile))
		secrets.AddBasicAuth(cfg.Username, cfg.Password)
		if ap := cfg.AuthProvider; ap != nil {
			for _, v := range ap.Config {
				secrets.Add(v)
			}
		}
	}
	wrap := cfg.WrapTransport
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		if wrap != nil {
			rt = wrap(rt)
		}
		return &learningTransport{rt: rt, sets: sets}
	}
}

// learningTransport adds the credential of every Authorization header a
// request carries to each of sets. client-go applies WrapTransport below its
// authentication round trippers, so it sees the header as sent.
type learningTransport struct {
	rt   http.RoundTripper
	sets []*redact.Set
	last atomic.Value // string: the last header learned, not learned again
}

func (t *learningTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if h := req.Header.Get("Authorization"); h != "" && t.last.Load() != h {
		for _, secrets := range t.sets {
			secrets.Add(h)
			if _, cred, ok := strings.Cut(h, " "); ok {
				secrets.Add(cred)
			}
		}
		t.last.Store(h)
	}
	return t.rt.RoundTrip(req)
}

func (p *Plugin) analysisRuns() (AnalysisRunLister, error) {
	p.runsMu.Lock()
	defer p.runsMu.Unlock()
	if p.runs == nil {
		l, err := p.newRuns(p.kube, p.logSecrets)
		if err != nil {
			return nil, err // not cached: credentials may appear
		}
		p.runs = l
	}
	return p.runs, nil
}

// checkOrder checks that the previous stage passed for the same Rollout
// revision and soaked long enough before this AnalysisRun started. It
// returns the out-of-order reason, or "" when in order; the error is for a
// check that could not be made.
func (p *Plugin) checkOrder(ctx context.Context, cl *call, c *prepared, prev policies.Stage) (string, error) {
	ar := cl.ar
	if ar == nil {
		return "", fmt.Errorf("stage ordering: the controller sent no AnalysisRun")
	}
	owner := rolloutOwner(ar)
	revision := ar.Annotations[AnnotationRevision]
	hash := ar.Labels[LabelPodTemplateHash]
	if owner == nil || revision == "" || hash == "" {
		return "", fmt.Errorf("stage ordering: AnalysisRun %s/%s was not created by a Rollout step (needs a Rollout owner, label %s and annotation %s); set stageOrdering: false to use this template elsewhere",
			ar.Namespace, ar.Name, LabelPodTemplateHash, AnnotationRevision)
	}
	lister, err := p.analysisRuns()
	if err != nil {
		return "", err
	}
	runs, err := lister.ListAnalysisRuns(ctx, ar.Namespace, LabelPodTemplateHash+"="+hash)
	if err != nil {
		return "", fmt.Errorf("stage ordering: list AnalysisRuns in namespace %s (needs RBAC get, list on analysisruns.argoproj.io): %w", ar.Namespace, err)
	}
	started := runStart(ar, p.now())
	base := fmt.Sprintf("out-of-order: stage %s needs %s to have passed for revision %s", c.cfg.Stage, prev.Name, revision)

	// Candidates newest first; the first that passed and soaked wins.
	sort.Slice(runs, func(i, j int) bool {
		return runs[j].CreationTimestamp.Before(&runs[i].CreationTimestamp)
	})
	var seen []string
	for i := range runs {
		r := &runs[i]
		if r.UID == ar.UID && r.Name == ar.Name {
			continue
		}
		if o := rolloutOwner(r); o == nil || o.UID != owner.UID || r.Annotations[AnnotationRevision] != revision {
			continue
		}
		if !usesStage(r, prev.Name) {
			continue
		}
		switch {
		case r.Status.Phase != v1alpha1.AnalysisPhaseSuccessful:
			seen = append(seen, fmt.Sprintf("%s is %s", r.Name, orDefault(string(r.Status.Phase), "Pending")))
		case r.Spec.Terminate:
			seen = append(seen, fmt.Sprintf("%s was terminated before it finished (promoted or aborted)", r.Name))
		default:
			soaked := started.Sub(runStart(r, started))
			if soaked < time.Duration(prev.Soak) {
				seen = append(seen, fmt.Sprintf("%s passed, but %s began only %s before %s (soak %s)", r.Name, prev.Name, soaked.Round(time.Second), c.cfg.Stage, prev.Soak))
				continue
			}
			p.log.Debug("stage in order", cl.logFields("stage", c.cfg.Stage, "previous", r.Name)...)
			return "", nil
		}
	}
	if len(seen) == 0 {
		return base + " (no AnalysisRun of " + prev.Name + " found for this revision)", nil
	}
	return base + " (" + strings.Join(seen, "; ") + ")", nil
}

// rolloutOwner returns the Rollout controlling r.
func rolloutOwner(r *v1alpha1.AnalysisRun) *metav1.OwnerReference {
	for i := range r.OwnerReferences {
		o := &r.OwnerReferences[i]
		if o.Kind == "Rollout" && strings.HasPrefix(o.APIVersion, "argoproj.io/") {
			return o
		}
	}
	return nil
}

// runStart is when an AnalysisRun started: the earlier of its creation
// and its status.startedAt, else def. The controller sets startedAt in
// the status update after the run's first measurement (argo-rollouts
// analysis/analysis.go), so the first call sees none and later ones a
// time after the first look; the creation, before any look, is the start
// every call agrees on.
func runStart(r *v1alpha1.AnalysisRun, def time.Time) time.Time {
	start := def
	if r.Status.StartedAt != nil {
		start = r.Status.StartedAt.Time
	}
	if c := r.CreationTimestamp; !c.IsZero() && (r.Status.StartedAt == nil || c.Time.Before(start)) {
		start = c.Time
	}
	return start
}

// usesStage reports whether a metric of r uses this plugin for stage. The
// stored spec still holds {{args.*}}: they are resolved from the run's
// arguments as the controller resolves them, quoted for JSON. Arguments
// from secrets (a credential, never a stage name) resolve to a
// placeholder, as the controller's own getResolvedMetricsWithoutSecrets
// does.
func usesStage(r *v1alpha1.AnalysisRun, stage string) bool {
	args := map[string]string{}
	for _, a := range r.Spec.Args {
		if a.ValueFrom != nil && a.ValueFrom.SecretKeyRef != nil {
			args[a.Name] = "secret"
			continue
		}
		if a.Value != nil {
			q := strconv.Quote(*a.Value)
			args[a.Name] = q[1 : len(q)-1]
		}
	}
	for _, m := range r.Spec.Metrics {
		raw, ok := m.Provider.Plugin[Name]
		if !ok {
			continue
		}
		resolved, ok := resolveArgs(string(raw), args)
		if !ok {
			continue
		}
		var cfg struct {
			Stage string `json:"stage"`
		}
		if json.Unmarshal([]byte(resolved), &cfg) == nil && cfg.Stage == stage {
			return true
		}
	}
	return false
}

// argRE matches an argument placeholder as Argo's templates write it.
var argRE = regexp.MustCompile(`\{\{\s*args\.([^{}\s]+)\s*\}\}`)

// resolveArgs substitutes {{args.NAME}} in s; false when one is unknown.
func resolveArgs(s string, args map[string]string) (string, bool) {
	ok := true
	out := argRE.ReplaceAllStringFunc(s, func(m string) string {
		v, found := args[argRE.FindStringSubmatch(m)[1]]
		ok = ok && found
		return v
	})
	return out, ok
}
