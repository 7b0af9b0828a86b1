package rollouts

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"

	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"

	"github.com/phaseguard/phaseguard/internal/redact"
)

// placeholderRE matches a whole value that is one argument placeholder,
// spaces inside the braces allowed as Argo's template resolver allows
// them (github.com/argoproj/argo-rollouts/utils/template: the tag is
// trimmed).
var placeholderRE = regexp.MustCompile(`^\{\{\s*args\.([^{}\s]+)\s*\}\}$`)

// checkSecretArgs checks that every credential value of a template comes
// from the AnalysisRun's own secrets: in the AnalysisRun's stored spec,
// which the controller keeps unresolved (it resolves a copy for each call:
// argo-rollouts analysis/analysis.go, Controller.resolveArgs), the field
// is exactly {{args.NAME}}, and argument NAME of the run has
// valueFrom.secretKeyRef, which the controller reads from a Secret of the
// run's own namespace. Anything else (a literal, an argument with a plain
// value, a placeholder inside other text) would let a template author put
// a credential the operator never chose into the request, and is an error
// naming the field. It returns every problem at once.
func checkSecretArgs(ar *v1alpha1.AnalysisRun, metric string, fields []credentialField) []error {
	if len(fields) == 0 {
		return nil
	}
	var errs []error
	stored, err := storedConfig(ar, metric)
	if err != nil {
		for _, f := range fields {
			errs = append(errs, fmt.Errorf("%s: %w", f.field, err))
		}
		return errs
	}
	for _, f := range fields {
		if err := checkSecretArg(ar, stored, f); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w; a credential value must be {{args.NAME}} of an argument with valueFrom.secretKeyRef, or come from a connection the operator defined (prometheus.connection)", f.field, err))
		}
	}
	return errs
}

func checkSecretArg(ar *v1alpha1.AnalysisRun, stored map[string]any, f credentialField) error {
	var v any = stored
	for _, k := range f.path {
		obj, ok := v.(map[string]any)
		if !ok {
			return errors.New("not in the AnalysisRun's stored spec")
		}
		if v, ok = obj[k]; !ok {
			return errors.New("not in the AnalysisRun's stored spec")
		}
	}
	s, ok := v.(string)
	if !ok {
		return errors.New("not a string in the AnalysisRun's stored spec")
	}
	m := placeholderRE.FindStringSubmatch(s)
	if m == nil {
		return errors.New("not exactly {{args.NAME}} in the AnalysisRun's stored spec")
	}
	name := m[1]
	for i := range ar.Spec.Args {
		a := &ar.Spec.Args[i]
		if a.Name != name {
			continue
		}
		if a.ValueFrom == nil || a.ValueFrom.SecretKeyRef == nil {
			return fmt.Errorf("argument %q does not come from a Secret (valueFrom.secretKeyRef)", name)
		}
		// The controller passes the run with the secret's value in the
		// argument; it must be what it resolved into the metric.
		if a.Value != nil && *a.Value != f.value {
			return fmt.Errorf("argument %q of the AnalysisRun does not match the resolved metric", name)
		}
		return nil
	}
	return fmt.Errorf("argument %q is not an argument of the AnalysisRun", name)
}

// storedConfig returns the plugin config of metric as the AnalysisRun
// stores it, placeholders unresolved.
func storedConfig(ar *v1alpha1.AnalysisRun, metric string) (map[string]any, error) {
	if ar == nil {
		return nil, errors.New("the controller sent no AnalysisRun to check the credential's source against")
	}
	for i := range ar.Spec.Metrics {
		m := &ar.Spec.Metrics[i]
		if m.Name != metric {
			continue
		}
		raw, ok := m.Provider.Plugin[Name]
		if !ok {
			break
		}
		var cfg map[string]any
		if err := json.Unmarshal(raw, &cfg); err != nil {
			return nil, errors.New("the AnalysisRun's stored plugin config is not a JSON object")
		}
		return cfg, nil
	}
	return nil, fmt.Errorf("the AnalysisRun has no metric %q using plugin %s to check the credential's source against", metric, Name)
}

// learnSecretArgs adds the value of every argument of ar that the
// controller resolved from a Secret and that metric's plugin config
// refers to: what the resolved config may hold, and so what an error may
// quote. Arguments other metrics use are left out: a value of another
// provider's (a Secret holding "production") would mark that text in
// this metric's measurements.
func learnSecretArgs(set *redact.Set, ar *v1alpha1.AnalysisRun, metric string) {
	if ar == nil {
		return
	}
	var raw string
	for i := range ar.Spec.Metrics {
		if m := &ar.Spec.Metrics[i]; m.Name == metric {
			raw = string(m.Provider.Plugin[Name])
		}
	}
	used := map[string]bool{}
	for _, m := range argRE.FindAllStringSubmatch(raw, -1) {
		used[m[1]] = true
	}
	for _, a := range ar.Spec.Args {
		if a.ValueFrom != nil && a.ValueFrom.SecretKeyRef != nil && a.Value != nil && used[a.Name] {
			set.Add(*a.Value)
		}
	}
}
