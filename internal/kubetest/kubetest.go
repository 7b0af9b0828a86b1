// Package kubetest runs a real Kubernetes API server in the test process,
// serving Argo Rollouts' custom resources (Rollout, AnalysisRun,
// AnalysisTemplate, ClusterAnalysisTemplate, Experiment), for tests that
// talk to Kubernetes through client-go exactly as they would in a cluster.
//
// [Start] runs an embedded etcd (k8s.io/apiserver's etcd3 test server),
// starts apiextensions-apiserver on it (its integration test fixtures), installs
// the CRDs from the argo-rollouts module's manifests/crds and waits until they
// are established. It serves custom resources only: no core workloads (pods,
// ReplicaSets), no controllers, no admission webhooks.
//
// Build tests that use it without -trimpath: the server locates its own
// source files at run time.
//
// It also runs the real components as processes, for end-to-end tests:
// [StartKubeAPIServer] (the whole Kubernetes API, on the same embedded
// etcd), [StartKubeControllerManager] (the controllers a ReplicaSet's pods
// need) and [StartKWOK] with [CreateKWOKNode] (a fake node whose pods KWOK
// makes Running and Ready, standing in for a kubelet), from binaries
// [Binaries] builds from the e2e/ modules or finds in $PHASEGUARD_E2E_BIN.
package kubetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	"k8s.io/apiextensions-apiserver/test/integration/fixtures"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/apiserver/pkg/storage/etcd3/testserver"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"
)

// ArgoModule is the module whose manifests/crds are installed.
const ArgoModule = "github.com/argoproj/argo-rollouts"

// CRDDirEnv overrides where the CRD manifests are read from (a directory of
// *-crd.yaml files); by default it is manifests/crds of ArgoModule in the
// module cache, as `go list -m` resolves it for this module.
const CRDDirEnv = "KUBETEST_CRDS"

// Resources of Argo Rollouts, for dynamic clients.
var (
	Rollouts                 = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "rollouts"}
	AnalysisRuns             = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "analysisruns"}
	AnalysisTemplates        = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "analysistemplates"}
	ClusterAnalysisTemplates = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "clusteranalysistemplates"}
	Experiments              = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "experiments"}
)

// kinds maps a kind to its resource, for Create.
var kinds = map[string]schema.GroupVersionResource{
	"Rollout":                 Rollouts,
	"AnalysisRun":             AnalysisRuns,
	"AnalysisTemplate":        AnalysisTemplates,
	"ClusterAnalysisTemplate": ClusterAnalysisTemplates,
	"Experiment":              Experiments,
}

// startTimeout bounds starting etcd, the API server and installing CRDs.
const startTimeout = 2 * time.Minute

// envMu serializes Start: the fixtures read the etcd address from the
// process environment (KUBE_INTEGRATION_ETCD_URL).
var envMu sync.Mutex

// Start runs an API server serving Argo Rollouts' CRDs for the rest of the
// test and returns a client configuration for it, credentials included
// (the server authorizes every request). Everything stops when t ends.
//
// With no resources given it installs all five of Argo's CRDs; given some
// (Rollouts, AnalysisRuns, ...), only those. Each CRD takes the server a
// few seconds to install (seconds more under -race), so ask for what the
// test uses.
//
// A server that cannot start fails the test: Start never skips, so under
// CI=true a broken harness can never pass as a skipped test.
func Start(t testing.TB, resources ...schema.GroupVersionResource) *rest.Config {
	t.Helper()
	crds := crdsFor(t, resources)
	began := time.Now()
	etcdURL := startEtcd(t)

	envMu.Lock()
	old, had := os.LookupEnv("KUBE_INTEGRATION_ETCD_URL")
	os.Setenv("KUBE_INTEGRATION_ETCD_URL", etcdURL)
	tearDown, cfg, _, err := fixtures.StartDefaultServer(t)
	if had {
		os.Setenv("KUBE_INTEGRATION_ETCD_URL", old)
	} else {
		os.Unsetenv("KUBE_INTEGRATION_ETCD_URL")
	}
	envMu.Unlock()
	if err != nil {
		t.Fatalf("kubetest: start apiextensions-apiserver: %v", err)
	}
	t.Cleanup(tearDown)
	apiUp := time.Now()

	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = 500, 1000

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := install(ctx, cfg, crds); err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	t.Logf("kubetest: API server up in %s, %d CRDs established in %s", apiUp.Sub(began).Round(time.Millisecond), len(crds), time.Since(apiUp).Round(time.Millisecond))
	return cfg
}

// crdsFor reads the CRDs of the resources (all five if none), failing the
// test if they cannot be read.
func crdsFor(t testing.TB, resources []schema.GroupVersionResource) []*apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	dir, err := CRDDir()
	if err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	crds, err := readCRDs(dir, resources)
	if err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	return crds
}

// startEtcd runs an embedded etcd until t ends and returns its client URL.
func startEtcd(t testing.TB) string {
	t.Helper()
	endpoints := testserver.RunEtcd(t, nil).Endpoints()
	if len(endpoints) == 0 {
		t.Fatal("kubetest: etcd reports no client URL")
	}
	return endpoints[0]
}

// CRDDir returns the directory the CRD manifests are read from: $KUBETEST_CRDS,
// else manifests/crds of the argo-rollouts module this module requires.
func CRDDir() (string, error) {
	if d := os.Getenv(CRDDirEnv); d != "" {
		return d, nil
	}
	var stderr bytes.Buffer
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", ArgoModule)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("locate module %s (set %s to a directory of CRD manifests instead): %w: %s", ArgoModule, CRDDirEnv, err, strings.TrimSpace(stderr.String()))
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return "", fmt.Errorf("locate module %s: not downloaded (run go mod download %s)", ArgoModule, ArgoModule)
	}
	return filepath.Join(dir, "manifests", "crds"), nil
}

// readCRDs decodes the *-crd.yaml files of dir that define one of want
// (all when want is empty).
func readCRDs(dir string, want []schema.GroupVersionResource) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*-crd.yaml"))
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("no *-crd.yaml in %s", dir)
	}
	var crds []*apiextensionsv1.CustomResourceDefinition
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read CRD: %w", err)
		}
		var doc map[string]any
		if err := yaml.Unmarshal(data, &doc); err != nil {
			return nil, fmt.Errorf("decode CRD %s: %w", p, err)
		}
		// Descriptions are most of the 3 MB of Argo's CRDs (every field of
		// a pod template is documented) and cost the API server tens of
		// seconds to process; validation does not read them.
		dropDescriptions(doc["spec"])
		data, err = yaml.Marshal(doc)
		if err != nil {
			return nil, fmt.Errorf("encode CRD %s: %w", p, err)
		}
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.Unmarshal(data, crd); err != nil {
			return nil, fmt.Errorf("decode CRD %s: %w", p, err)
		}
		if crd.Kind != "CustomResourceDefinition" {
			return nil, fmt.Errorf("decode CRD %s: kind %q, want CustomResourceDefinition", p, crd.Kind)
		}
		if len(want) > 0 && !slices.ContainsFunc(want, func(r schema.GroupVersionResource) bool {
			return r.Group == crd.Spec.Group && r.Resource == crd.Spec.Names.Plural
		}) {
			continue
		}
		crds = append(crds, crd)
	}
	if len(crds) == 0 || (len(want) > 0 && len(crds) != len(want)) {
		return nil, fmt.Errorf("%s: found %d of the %d CRDs asked for (%v)", dir, len(crds), len(want), want)
	}
	return crds, nil
}

// dropDescriptions removes every "description" string of an OpenAPI
// schema tree in place. A property named description is kept: it is a map.
func dropDescriptions(v any) {
	switch v := v.(type) {
	case map[string]any:
		if _, ok := v["description"].(string); ok {
			delete(v, "description")
		}
		for _, e := range v {
			dropDescriptions(e)
		}
	case []any:
		for _, e := range v {
			dropDescriptions(e)
		}
	}
}

// install creates the CRDs and waits until every one is established and
// its resource is served.
func install(ctx context.Context, cfg *rest.Config, crds []*apiextensionsv1.CustomResourceDefinition) error {
	cs, err := apiextensionsclient.NewForConfig(cfg)
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	for _, crd := range crds {
		if _, err := cs.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, crd, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create CRD %s: %w", crd.Name, err)
		}
	}
	for _, crd := range crds {
		name := crd.Name
		err := wait.PollUntilContextCancel(ctx, 50*time.Millisecond, true, func(ctx context.Context) (bool, error) {
			got, err := cs.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			for _, c := range got.Status.Conditions {
				if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			return fmt.Errorf("wait for CRD %s to be established: %w", name, err)
		}
		// Established is set before the resource's handler serves lists;
		// wait for that too, so the first request of a test never 404s.
		gvr := schema.GroupVersionResource{Group: crd.Spec.Group, Version: crd.Spec.Versions[0].Name, Resource: crd.Spec.Names.Plural}
		err = wait.PollUntilContextCancel(ctx, 50*time.Millisecond, true, func(ctx context.Context) (bool, error) {
			var err error
			if crd.Spec.Scope == apiextensionsv1.NamespaceScoped {
				_, err = dyn.Resource(gvr).Namespace("default").List(ctx, metav1.ListOptions{})
			} else {
				_, err = dyn.Resource(gvr).List(ctx, metav1.ListOptions{})
			}
			if apierrors.IsNotFound(err) {
				return false, nil
			}
			return err == nil, err
		})
		if err != nil {
			return fmt.Errorf("wait for resource %s to be served: %w", gvr.Resource, err)
		}
	}
	return nil
}

// Dynamic returns a dynamic client for cfg, failing the test on error.
func Dynamic(t testing.TB, cfg *rest.Config) dynamic.Interface {
	t.Helper()
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("kubetest: dynamic client: %v", err)
	}
	return dyn
}

// Decode parses one YAML (or JSON) object of an Argo Rollouts kind.
func Decode(doc string) (*unstructured.Unstructured, schema.GroupVersionResource, error) {
	obj := &unstructured.Unstructured{}
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(doc), 4096)
	if err := dec.Decode(&obj.Object); err != nil {
		return nil, schema.GroupVersionResource{}, fmt.Errorf("decode object: %w", err)
	}
	var extra map[string]any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, schema.GroupVersionResource{}, errors.New("decode object: more than one document")
	}
	gvr, ok := kinds[obj.GetKind()]
	if !ok || obj.GroupVersionKind().GroupVersion() != gvr.GroupVersion() {
		return nil, schema.GroupVersionResource{}, fmt.Errorf("decode object: %s %s is not an Argo Rollouts kind", obj.GetAPIVersion(), obj.GetKind())
	}
	return obj, gvr, nil
}

// Create creates the Argo Rollouts object in doc (YAML or JSON) and returns
// it as stored. A namespaced object without a namespace goes to "default".
// AnalysisRun, AnalysisTemplate and Experiment CRDs have no status
// subresource, so their status is stored as given; a Rollout's status is
// not (use [SetStatus]).
func Create(t testing.TB, cfg *rest.Config, doc string) *unstructured.Unstructured {
	t.Helper()
	obj, gvr, err := Decode(doc)
	if err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var ri dynamic.ResourceInterface = Dynamic(t, cfg).Resource(gvr)
	if gvr != ClusterAnalysisTemplates {
		if obj.GetNamespace() == "" {
			obj.SetNamespace("default")
		}
		ri = Dynamic(t, cfg).Resource(gvr).Namespace(obj.GetNamespace())
	}
	got, err := ri.Create(ctx, obj, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("kubetest: create %s %s/%s: %v", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
	}
	return got
}

// SetStatus replaces the status of a Rollout through its status
// subresource (the way the controller writes it) with statusDoc, a YAML or
// JSON object, and returns the stored object.
func SetStatus(t testing.TB, cfg *rest.Config, namespace, name, statusDoc string) *unstructured.Unstructured {
	t.Helper()
	var status map[string]any
	if err := yaml.Unmarshal([]byte(statusDoc), &status); err != nil {
		t.Fatalf("kubetest: decode status: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ri := Dynamic(t, cfg).Resource(Rollouts).Namespace(namespace)
	obj, err := ri.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("kubetest: get Rollout %s/%s: %v", namespace, name, err)
	}
	obj.Object["status"] = status
	got, err := ri.UpdateStatus(ctx, obj, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("kubetest: update status of Rollout %s/%s: %v", namespace, name, err)
	}
	return got
}

// WriteKubeconfig writes a kubeconfig file for cfg into a temporary
// directory of t and returns its path, for a process started by the test
// (set KUBECONFIG to it).
func WriteKubeconfig(t testing.TB, cfg *rest.Config) string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["kubetest"] = &clientcmdapi.Cluster{
		Server:                   cfg.Host + cfg.APIPath,
		CertificateAuthorityData: cfg.CAData,
		CertificateAuthority:     cfg.CAFile,
		InsecureSkipTLSVerify:    cfg.Insecure,
		TLSServerName:            cfg.ServerName,
	}
	kc.AuthInfos["kubetest"] = &clientcmdapi.AuthInfo{
		Token:                 cfg.BearerToken,
		TokenFile:             cfg.BearerTokenFile,
		ClientCertificateData: cfg.CertData,
		ClientCertificate:     cfg.CertFile,
		ClientKeyData:         cfg.KeyData,
		ClientKey:             cfg.KeyFile,
		Username:              cfg.Username,
		Password:              cfg.Password,
	}
	kc.Contexts["kubetest"] = &clientcmdapi.Context{Cluster: "kubetest", AuthInfo: "kubetest", Namespace: "default"}
	kc.CurrentContext = "kubetest"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatalf("kubetest: write kubeconfig: %v", err)
	}
	return path
}
