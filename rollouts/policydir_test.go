package rollouts_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"

	"github.com/phaseguard/phaseguard/promapi/promapitest"
	"github.com/phaseguard/phaseguard/rollouts"
)

// TestPolicyFilesAreTheOperators: a template names a policy file only
// inside the directory the operator gave the plugin (--policy-dir),
// symlinks resolved. Any other readable file of the controller (the
// service-account token, a key), directly, through "..", or through a
// symlink the directory holds, is an Error naming policy and saying how
// the operator allows files, which never quotes the file: a policy load
// error quotes what it read (a one-value document whole). Presets, inline
// policies and files in the directory, also through a ConfigMap mount's
// ..data symlinks and a symlinked directory, load.
func TestPolicyFilesAreTheOperators(t *testing.T) {
	t.Parallel()
	echo := promapitest.ServeEcho(t, promapitest.EchoWarning)
	root := t.TempDir()
	secret := randomSecret(t, "controller-token")
	outside := writeFile(t, root, "token.yaml", secret+"\n") // a one-value YAML document
	// The operator's directory, as a ConfigMap volume lays it out.
	dir := filepath.Join(root, "policies")
	gen := filepath.Join(dir, "..2026_03_02_12_00_00.000000001")
	if err := os.MkdirAll(gen, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, gen, "tiny.yaml", tinyPolicy)
	writeFile(t, gen, "broken.yaml", "apiVersion: phaseguard.dev/v1alpha1\nkind: Policy\nspec: {interval: forever}\n")
	for _, l := range [][2]string{
		{filepath.Base(gen), filepath.Join(dir, "..data")},
		{filepath.Join("..data", "tiny.yaml"), filepath.Join(dir, "tiny.yaml")},
		{filepath.Join("..data", "broken.yaml"), filepath.Join(dir, "broken.yaml")},
		{outside, filepath.Join(dir, "escape.yaml")},
		{dir, filepath.Join(root, "linked-policies")},
	} {
		if err := os.Symlink(l[0], l[1]); err != nil {
			t.Fatal(err)
		}
	}
	config := func(policy string) string {
		return `{"policy": "` + policy + `", "service": "checkout", "namespace": "shop", "canaryHash": "7f8c9d6b4", "stageOrdering": false, "timeout": "5s",
			"prometheus": {"retries": -1, "address": "` + echo.URL + `"}}`
	}
	now := func() time.Time { return time.Now().Add(-time.Hour) }
	withDir := rollouts.New(rollouts.WithClock(now), rollouts.WithPolicyDir(dir))
	withLinkedDir := rollouts.New(rollouts.WithClock(now), rollouts.WithPolicyDir(filepath.Join(root, "linked-policies")))
	without := rollouts.New(rollouts.WithClock(now))
	const howToAllow = "--policy-dir=DIR"
	for _, tc := range []struct {
		name   string
		p      *rollouts.Plugin
		policy string
		want   string // in the Error's message; "" for a verdict
	}{
		{"a file without a policy directory", without, outside, "policy: a policy file is read only from the directory the operator gives the plugin"},
		{"the service-account token", without, serviceAccountToken + ".yaml", "policy: a policy file"},
		{"a file in the directory, without one given", without, filepath.Join(dir, "tiny.yaml"), "policy: a policy file"},
		{"a file outside the directory", withDir, outside, "policy: " + outside + " is not inside the plugin's policy directory"},
		{"a way out through ..", withDir, filepath.Join(dir, "..", "token.yaml"), "is not inside the plugin's policy directory"},
		{"a symlink out of the directory", withDir, filepath.Join(dir, "escape.yaml"), "resolves, symlinks followed, outside the plugin's policy directory"},
		{"a file the directory lacks", withDir, filepath.Join(dir, "missing.yaml"), "policy: " + filepath.Join(dir, "missing.yaml") + ": not found in the plugin's policy directory"},
		{"a file in the directory that does not load", withDir, filepath.Join(dir, "broken.yaml"), "interval"},
		{"a file in the directory", withDir, filepath.Join(dir, "tiny.yaml"), ""},
		{"a file in the directory, by its ..data path", withDir, filepath.Join(dir, "..data", "tiny.yaml"), ""},
		{"a file through a symlinked directory", withLinkedDir, filepath.Join(root, "linked-policies", "tiny.yaml"), ""},
		{"the directory's file, by the path the symlinked directory resolves to", withLinkedDir, filepath.Join(dir, "tiny.yaml"), ""},
		{"a preset", without, "phase-default", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := tc.p.Run(&v1alpha1.AnalysisRun{}, pluginMetric(t, config(tc.policy)))
			if tc.want == "" {
				if m.Phase == v1alpha1.AnalysisPhaseError {
					t.Errorf("%s: %s %q, want a verdict", tc.policy, m.Phase, m.Message)
				}
				return
			}
			if m.Phase != v1alpha1.AnalysisPhaseError || !strings.Contains(m.Message, tc.want) {
				t.Errorf("%s: %s %q, want an Error containing %q", tc.policy, m.Phase, m.Message, tc.want)
			}
			if tc.p != withDir && tc.p != withLinkedDir && !strings.Contains(m.Message, howToAllow) {
				t.Errorf("%q does not say how the operator allows policy files (%s)", m.Message, howToAllow)
			}
			if strings.Contains(m.Message, secret) {
				t.Errorf("the measurement quotes the file: %q", m.Message)
			}
		})
	}
}

func TestParseArgsPolicyDir(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		env  string
		err  string
	}{
		{[]string{"--policy-dir=/etc/phaseguard/policies"}, "", ""},
		{nil, "/etc/phaseguard/policies", ""},
		{[]string{"--policy-dir=policies"}, "", `--policy-dir "policies": want an absolute path`},
		{nil, "policies", `--policy-dir "policies": want an absolute path`},
	} {
		_, err := rollouts.ParseArgs(tc.args, func(k string) string {
			if k == rollouts.EnvPolicyDir {
				return tc.env
			}
			return ""
		})
		if (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%q with $%s=%q: %v, want %q", tc.args, rollouts.EnvPolicyDir, tc.env, err, tc.err)
		}
	}
}
