package rollouts_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	argoconfig "github.com/argoproj/argo-rollouts/utils/config"
	"github.com/argoproj/argo-rollouts/utils/defaults"
	argoplugin "github.com/argoproj/argo-rollouts/utils/plugin"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/yaml"

	"github.com/phaseguard/phaseguard/internal/kubetest"
	"github.com/phaseguard/phaseguard/rollouts"
)

// pluginEntry is one metricProviderPlugins entry of the
// argo-rollouts-config ConfigMap with exactly the fields of Argo Rollouts
// v1.7's PluginItem (utils/plugin/types), the oldest release phaseguard
// supports: an entry using a field v1.7 does not know fails strict
// decoding.
type pluginEntry struct {
	Name     string   `json:"name"`
	Location string   `json:"location"`
	Sha256   string   `json:"sha256"`
	Args     []string `json:"args,omitempty"`
}

// rolloutManager is argo-rollouts-manager's RolloutManager as far as
// phaseguard's example uses it, with its field names and JSON tags as in
// argoproj-labs/argo-rollouts-manager api/v1alpha1/argorollouts_types.go
// (v0.0.8, v0.0.9: RolloutManagerSpec.Env, .Version, .Plugins{Metric,
// TrafficManagement []Plugin{name, location, sha256}}); a field the example
// adds that is not listed here fails strict decoding.
type rolloutManager struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		Env     []corev1.EnvVar `json:"env,omitempty"`
		Version string          `json:"version,omitempty"`
		Plugins struct {
			TrafficManagement []rolloutManagerPlugin `json:"trafficManagement,omitempty"`
			Metric            []rolloutManagerPlugin `json:"metric,omitempty"`
		} `json:"plugins,omitempty"`
	} `json:"spec,omitempty"`
}

type rolloutManagerPlugin struct {
	Name     string `json:"name"`
	Location string `json:"location"`
	SHA256   string `json:"sha256,omitempty"`
}

var hexSHA256 = regexp.MustCompile(`^[0-9a-f]{64}$`)

// readExample decodes examples/NAME strictly into into.
func readExample(t testing.TB, name string, into any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("examples", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, into); err != nil {
		t.Fatalf("examples/%s: %v", name, err)
	}
}

// exampleConfigMap returns examples/argo-rollouts-config.yaml, decoded
// strictly, with its phaseguard entry (the only one) changed by edit: the
// ConfigMap a user applies after filling in location and sha256.
func exampleConfigMap(t testing.TB, edit func(*pluginEntry)) *corev1.ConfigMap {
	t.Helper()
	var cm corev1.ConfigMap
	readExample(t, "argo-rollouts-config.yaml", &cm)
	var entries []pluginEntry
	if err := yaml.UnmarshalStrict([]byte(cm.Data["metricProviderPlugins"]), &entries); err != nil {
		t.Fatalf("examples/argo-rollouts-config.yaml metricProviderPlugins: %v", err)
	}
	if len(entries) != 1 || entries[0].Name != rollouts.Name || entries[0].Location == "" || entries[0].Sha256 == "" {
		t.Fatalf("examples/argo-rollouts-config.yaml: entries %+v, want one %s with location and sha256", entries, rollouts.Name)
	}
	edit(&entries[0])
	data, err := yaml.Marshal(entries)
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["metricProviderPlugins"] = string(data)
	return &cm
}

// fileSHA256 returns the SHA-256 (hex) of the file at p, and its bytes.
func fileSHA256(t testing.TB, p string) (string, []byte) {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), data
}

// serveAsset serves data at /phaseguard-linux-amd64, as a release asset.
func serveAsset(t testing.TB, data []byte) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/phaseguard-linux-amd64" {
			http.NotFound(w, r)
			return
		}
		w.Write(data)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/phaseguard-linux-amd64"
}

// installWithCommand runs command (an init container's, its first element
// the image's /phaseguard) with the built binary bin, its directory
// argument mounted at dir: what the kubelet runs. It returns the copy's
// path and the sha256 install-plugin printed.
func installWithCommand(t testing.TB, bin string, command []string, mountPath, dir string) (string, string) {
	t.Helper()
	if len(command) != 3 || command[0] != "/phaseguard" || command[1] != "install-plugin" || command[2] != mountPath {
		t.Fatalf("init container command %q, want [/phaseguard install-plugin %s]", command, mountPath)
	}
	cmd := exec.Command(bin, command[1], dir)
	cmd.Env = []string{} // distroless: nothing set
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("%q: %v\n%s", command, err, ee.Stderr)
		}
		t.Fatalf("%q: %v", command, err)
	}
	sum, copyPath, ok := strings.Cut(strings.TrimSuffix(string(out), "\n"), "  ")
	if !ok || !hexSHA256.MatchString(sum) || copyPath != filepath.Join(dir, "phaseguard") {
		t.Fatalf("%q printed %q, want a sha256sum line for %s", command, out, filepath.Join(dir, "phaseguard"))
	}
	return copyPath, sum
}

// argoInstallDeployment returns the argo-rollouts Deployment of the
// install.yaml that ships with the argo-rollouts module this module
// requires (v1.10): what the patches are applied to.
func argoInstallDeployment(t testing.TB) []byte {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", kubetest.ArgoModule).Output()
	if err != nil || len(bytes.TrimSpace(out)) == 0 {
		t.Fatalf("locate module %s: %v", kubetest.ArgoModule, err)
	}
	data, err := os.ReadFile(filepath.Join(string(bytes.TrimSpace(out)), "manifests", "install.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for doc := range strings.SplitSeq(string(data), "\n---\n") {
		var head struct {
			Kind     string            `json:"kind"`
			Metadata metav1.ObjectMeta `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(doc), &head); err == nil && head.Kind == "Deployment" && head.Metadata.Name == "argo-rollouts" {
			j, err := yaml.YAMLToJSON([]byte(doc))
			if err != nil {
				t.Fatal(err)
			}
			return j
		}
	}
	t.Fatal("argo-rollouts install.yaml: no Deployment argo-rollouts")
	return nil
}

// TestInstallExamples checks the two install examples beside
// argo-rollouts-config.yaml. controller-init-container.yaml, decoded
// strictly as a Deployment, is applied as the strategic merge patch the
// README says (after controller-patch.yaml) to Argo's own install.yaml
// Deployment: the pod keeps Argo's volumes and mounts, gains an emptyDir
// that the init container writes and the controller reads where the
// ConfigMap's file:// location points, and every container still passes
// Argo's runAsNonRoot; the init container's command, run with the built
// binary, leaves an executable copy there. rolloutmanager.yaml decodes
// strictly as argo-rollouts-manager's RolloutManager and names the
// release asset for phaseguard with a well-formed sha256 and only
// environment variables the plugin reads.
func TestInstallExamples(t *testing.T) {
	t.Parallel()
	var cm corev1.ConfigMap
	readExample(t, "argo-rollouts-config.yaml", &cm)
	var entries []pluginEntry
	if err := yaml.UnmarshalStrict([]byte(cm.Data["metricProviderPlugins"]), &entries); err != nil || len(entries) != 1 {
		t.Fatalf("argo-rollouts-config metricProviderPlugins: %v %+v", err, entries)
	}
	loc, err := url.Parse(entries[0].Location)
	if err != nil || loc.Scheme != "file" {
		t.Fatalf("argo-rollouts-config location %q: want the file:// location the init container fills", entries[0].Location)
	}

	t.Run("init container", func(t *testing.T) {
		t.Parallel()
		var patch appsv1.Deployment
		readExample(t, "controller-init-container.yaml", &patch)
		var controllerPatch appsv1.Deployment
		readExample(t, "controller-patch.yaml", &controllerPatch)
		merged := argoInstallDeployment(t)
		for _, p := range []appsv1.Deployment{controllerPatch, patch} {
			pj, err := json.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			if merged, err = strategicpatch.StrategicMergePatch(merged, pj, appsv1.Deployment{}); err != nil {
				t.Fatalf("strategic merge patch: %v", err)
			}
		}
		var d appsv1.Deployment
		dec := json.NewDecoder(bytes.NewReader(merged))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&d); err != nil {
			t.Fatalf("patched Deployment: %v", err)
		}
		pod := d.Spec.Template.Spec
		volumes := map[string]corev1.Volume{}
		for _, v := range pod.Volumes {
			volumes[v.Name] = v
		}
		for _, name := range []string{"plugin-bin", "tmp", "phaseguard-connections", "phaseguard-policies"} {
			if _, ok := volumes[name]; !ok {
				t.Errorf("patched pod lost volume %s: %v", name, pod.Volumes)
			}
		}
		if len(pod.InitContainers) != 1 || len(pod.Containers) != 1 {
			t.Fatalf("patched pod: %d init containers, %d containers; want 1 and Argo's 1", len(pod.InitContainers), len(pod.Containers))
		}
		init, ctrl := pod.InitContainers[0], pod.Containers[0]
		if !strings.HasPrefix(init.Image, "ghcr.io/phaseguard/phaseguard:") && !strings.HasPrefix(init.Image, "ghcr.io/phaseguard/phaseguard@") {
			t.Errorf("init container image %q, want the image release.yml pushes, ghcr.io/phaseguard/phaseguard", init.Image)
		}
		// The directory the location names must be an emptyDir the init
		// container writes and the controller mounts.
		dir := path.Dir(loc.Path)
		mountedAt := func(c corev1.Container) (corev1.VolumeMount, bool) {
			for _, m := range c.VolumeMounts {
				if m.MountPath == dir {
					return m, true
				}
			}
			return corev1.VolumeMount{}, false
		}
		im, ok1 := mountedAt(init)
		cmnt, ok2 := mountedAt(ctrl)
		if !ok1 || !ok2 || im.Name != cmnt.Name || im.ReadOnly || volumes[im.Name].EmptyDir == nil {
			t.Errorf("%s (the location's directory): mounted from volume %q (read-only %v) in the init container, %q in the controller, emptyDir %v; want one emptyDir in both, writable by the init container",
				dir, im.Name, im.ReadOnly, cmnt.Name, volumes[im.Name].EmptyDir != nil)
		}
		if len(ctrl.VolumeMounts) < 3 {
			t.Errorf("controller lost Argo's mounts: %+v", ctrl.VolumeMounts)
		}
		// Argo runs the pod with runAsNonRoot: the kubelet refuses a
		// container that would run as root (distroless' default user).
		if psc := pod.SecurityContext; psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
			t.Errorf("Argo's install.yaml no longer sets runAsNonRoot (the init container's user was chosen for it): %+v", psc)
		}
		if sc := init.SecurityContext; sc == nil || sc.RunAsUser == nil || *sc.RunAsUser == 0 || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("init container securityContext %+v: want a non-zero runAsUser (the image's default is root) and a read-only root", sc)
		}

		// The command, run as the kubelet would, leaves the binary where
		// the location points.
		bin := pluginBinary(t)
		binSum, binData := fileSHA256(t, bin)
		copyPath, sum := installWithCommand(t, bin, init.Command, dir, t.TempDir())
		copySum, _ := fileSHA256(t, copyPath)
		if sum != binSum || copySum != binSum {
			t.Errorf("install-plugin printed %s, copy is %s, binary is %s", sum, copySum, binSum)
		}
		if fi, err := os.Stat(copyPath); err != nil || fi.Mode().Perm() != 0o755 || fi.Size() != int64(len(binData)) {
			t.Errorf("copy: %v %v", fi, err)
		}
	})

	t.Run("RolloutManager", func(t *testing.T) {
		t.Parallel()
		var rm rolloutManager
		readExample(t, "rolloutmanager.yaml", &rm)
		if rm.APIVersion != "argoproj.io/v1alpha1" || rm.Kind != "RolloutManager" {
			t.Errorf("rolloutmanager.yaml: %s %s, want argoproj.io/v1alpha1 RolloutManager", rm.APIVersion, rm.Kind)
		}
		ms := rm.Spec.Plugins.Metric
		if len(ms) != 1 || ms[0].Name != rollouts.Name {
			t.Fatalf("rolloutmanager.yaml metric plugins %+v, want %s", ms, rollouts.Name)
		}
		u, err := url.Parse(ms[0].Location)
		if err != nil || u.Scheme != "https" || !strings.HasSuffix(u.Path, "/phaseguard-linux-amd64") {
			t.Errorf("rolloutmanager.yaml location %q: want the https release asset (the operator mounts no volume a file:// could name)", ms[0].Location)
		}
		if !hexSHA256.MatchString(ms[0].SHA256) {
			t.Errorf("rolloutmanager.yaml sha256 %q: want 64 lower-case hex digits", ms[0].SHA256)
		}
		known := map[string]bool{rollouts.EnvLogFormat: true, rollouts.EnvLogLevel: true, rollouts.EnvConnectionsFile: true, rollouts.EnvPolicyDir: true, "GOMEMLIMIT": true}
		for _, e := range rm.Spec.Env {
			if !known[e.Name] {
				t.Errorf("rolloutmanager.yaml env %s: not a variable the plugin reads", e.Name)
			}
		}
	})
}

// TestInstallLocations installs the built binary through Argo Rollouts
// v1.10's own loader (InitializeConfig on the ConfigMap, DownloadPlugins)
// each way the README describes, and checks what lands in plugin-bin:
// the https release asset with the sha256 of sha256sums.txt; the file://
// location an init container filled with install-plugin; the entry
// argo-rollouts-manager writes from rolloutmanager.yaml (name, location,
// sha256, no args). A wrong sha256 on an https location is refused; on a
// file:// location Argo does not check it (as the README warns). The
// oldest supported release, v1.7.2, is checked the same way by
// TestOldestArgo. It changes the working directory, so it runs alone.
func TestInstallLocations(t *testing.T) {
	bin := pluginBinary(t)
	sum, data := fileSHA256(t, bin)
	asset := serveAsset(t, data)
	initDir := t.TempDir()
	copyPath, _ := installWithCommand(t, bin, []string{"/phaseguard", "install-plugin", "/plugins"}, "/plugins", initDir)
	var rm rolloutManager
	readExample(t, "rolloutmanager.yaml", &rm)
	if len(rm.Spec.Plugins.Metric) != 1 {
		t.Fatalf("rolloutmanager.yaml: %+v", rm.Spec.Plugins)
	}
	wrong := strings.Repeat("0", 64)
	tests := []struct {
		name    string
		cm      func(t *testing.T) *corev1.ConfigMap
		wantErr string
	}{
		{
			name: "https release asset",
			cm: func(t *testing.T) *corev1.ConfigMap {
				return exampleConfigMap(t, func(e *pluginEntry) { e.Location, e.Sha256, e.Args = asset, sum, nil })
			},
		},
		{
			name: "file location filled by the init container",
			cm: func(t *testing.T) *corev1.ConfigMap {
				return exampleConfigMap(t, func(e *pluginEntry) { e.Location, e.Sha256, e.Args = "file://"+copyPath, sum, nil })
			},
		},
		{
			// The operator's ConfigMap: its pluginItem{name, location,
			// sha256} list under metricProviderPlugins.
			name: "RolloutManager",
			cm: func(t *testing.T) *corev1.ConfigMap {
				p := rm.Spec.Plugins.Metric[0]
				u, _ := url.Parse(p.Location)
				p.Location, p.SHA256 = asset, sum
				if path.Base(u.Path) != path.Base(asset) {
					t.Fatalf("rolloutmanager.yaml asset %s, want %s", path.Base(u.Path), path.Base(asset))
				}
				items, _ := yaml.Marshal([]rolloutManagerPlugin{p})
				return &corev1.ConfigMap{
					ObjectMeta: metav1.ObjectMeta{Name: defaults.DefaultRolloutsConfigMapName, Namespace: rm.Namespace},
					Data:       map[string]string{"trafficRouterPlugins": "[]\n", "metricProviderPlugins": string(items)},
				}
			},
		},
		{
			name: "https release asset, wrong sha256",
			cm: func(t *testing.T) *corev1.ConfigMap {
				return exampleConfigMap(t, func(e *pluginEntry) { e.Location, e.Sha256, e.Args = asset, wrong, nil })
			},
			wantErr: "does not match expected hash",
		},
		{
			name: "file location, wrong sha256: not checked",
			cm: func(t *testing.T) *corev1.ConfigMap {
				return exampleConfigMap(t, func(e *pluginEntry) { e.Location, e.Sha256, e.Args = "file://"+copyPath, wrong, nil })
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cm := tt.cm(t)
			t.Chdir(t.TempDir())
			t.Setenv("POD_NAMESPACE", cm.Namespace)
			kube := k8sfake.NewClientset(cm)
			if _, err := argoconfig.InitializeConfig(kube, defaults.DefaultRolloutsConfigMapName); err != nil {
				t.Fatalf("InitializeConfig: %v", err)
			}
			t.Cleanup(argoconfig.UnInitializeConfig)
			err := argoplugin.DownloadPlugins(argoplugin.FileDownloaderImpl{}, kube)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("DownloadPlugins: %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("DownloadPlugins: %v", err)
			}
			got, _ := fileSHA256(t, filepath.Join(defaults.DefaultRolloutPluginFolder, filepath.FromSlash(rollouts.Name)))
			if got != sum {
				t.Errorf("installed plugin sha256 %s, want the binary's %s", got, sum)
			}
		})
	}
}
