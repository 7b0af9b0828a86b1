package rollouts

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/phaseguard/phaseguard/policies"
)

// EnvPolicyDir is the environment variable of the controller that names
// the policy directory when the plugin's args give no --policy-dir.
const EnvPolicyDir = "PHASEGUARD_POLICY_DIR"

// allowPolicyFiles says how the operator lets templates name policy
// files.
const allowPolicyFiles = "the operator names it with args [\"--policy-dir=DIR\"] in the plugin's entry of the argo-rollouts-config ConfigMap, or " +
	EnvPolicyDir + " in the controller's environment; a template may always use a preset or inline policy YAML"

// errNoPolicyDir is a template naming a policy file when the operator
// gave the plugin no policy directory.
var errNoPolicyDir = errors.New("policy: a policy file is read only from the directory the operator gives the plugin, and it has none: " + allowPolicyFiles)

// isInlinePolicy reports whether a policy reference is policy YAML.
func isInlinePolicy(ref string) bool {
	return strings.Contains(ref, "\n") || strings.HasPrefix(ref, "apiVersion")
}

// policyRef checks a template's policy reference and returns what to
// load: a preset name or inline YAML as it is; a file only inside the
// operator's policy directory, as its real path. A policy's load errors
// quote what they read (a one-value document whole), and the measurement
// is readable by whoever reads AnalysisRuns, so a template must not make
// the plugin read any other file of the controller (its service-account
// token, a key). The path is checked before anything is read: inside the
// directory as given or as its symlinks resolve, then resolved
// (filepath.EvalSymlinks: a ConfigMap mount is symlinks into a
// generation directory) and checked again, so that a symlink in the
// directory cannot lead out of it.
func (p *Plugin) policyRef(ref string) (string, error) {
	ref = strings.TrimSpace(ref)
	if isInlinePolicy(ref) || policies.IsPreset(ref) {
		return ref, nil
	}
	if p.policyDir == "" {
		return "", errNoPolicyDir
	}
	path := filepath.Clean(ref)
	dir, err := filepath.EvalSymlinks(p.policyDir)
	if err != nil {
		return "", fmt.Errorf("policy: the plugin's policy directory %s cannot be read (the operator's --policy-dir)", p.policyDir)
	}
	if !within(p.policyDir, path) && !within(dir, path) {
		return "", fmt.Errorf("policy: %s is not inside the plugin's policy directory %s (a template names a policy file only there; %s)", path, p.policyDir, allowPolicyFiles)
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", fmt.Errorf("policy: %s: not found in the plugin's policy directory %s", path, p.policyDir)
	}
	if !within(dir, real) {
		return "", fmt.Errorf("policy: %s resolves, symlinks followed, outside the plugin's policy directory %s", path, p.policyDir)
	}
	return real, nil
}

// within reports whether path is below dir, both clean.
func within(dir, path string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != "." && filepath.IsLocal(rel)
}
