package action

import (
	"encoding/json"
	"reflect"
	"strings"

	"k8s.io/client-go/rest"

	"github.com/phaseguard/phaseguard/internal/redact"
)

// Secrets leave the Action nowhere. A run keeps one redact.Set holding
// every secret input (the bearer token, the basic-auth password and the
// Base64 of "user:password", every header value but a tenant's, the
// GitHub token, the credentials of the kubeconfig input or of the client
// built from $KUBECONFIG or the in-cluster account) and, through
// promapi.Config.Redact, every header value the Prometheus client sent but
// a tenant's. A server that quotes a request's Authorization header back
// in an error body or a warning is thereby redacted wherever the text
// goes.
//
// Redaction happens at the sinks, which nothing else writes to:
//
//   - the log: Run wraps Env.Stdout in the set's Writer (flushed before Run
//     returns). Only ::add-mask:: commands go around it, since they must
//     carry the secret to the runner, which hides them;
//   - runner files: writeOutputs ($GITHUB_OUTPUT, each value), writeSummary
//     ($GITHUB_STEP_SUMMARY) and redactJSON (the report);
//   - the GitHub API: the ledger redacts the free text it sends, the
//     deployment and status descriptions. The rest of a request (the
//     environment, the ref, the payload) is identifiers made of inputs and
//     is sent as written: redacting it would change what later runs look
//     up (a secret "checkout" turned environment checkout-canary-10 into
//     [redacted]-canary-10), and no server's text reaches it.
//
// A producer that transforms text on its way to a sink redacts before it
// transforms, since a transformed secret no longer matches: the job
// summary's Markdown escaping (redactStrings on the summary's data), the
// report's JSON escaping (redactStrings on a copy of the verdict),
// descriptions cut to 140 bytes (the ledger), input values cut to 80
// characters (readInputs), and workflow-command escaping (logf, annotate;
// addSecret also adds the escaped forms).
//
// Values shorter than redact.MinLen are masked by the runner but not
// redacted (they would mark every "1"). Tenant header values
// (promapi.TenantHeaders) are neither: they are identifiers, and a tenant
// named like the service would mark every mention of it. Identifiers made
// of inputs are never redacted where something reads them back: the
// ledger's environment, ref and payload (see ledger) and the outputs other
// than reason (output.id). Only syntax is left alone elsewhere (output
// names and delimiters, JSON numbers), so that files stay readable by the
// runner and by JSON decoders.

// addSecret adds each value to set with the forms the Action's own output
// gives it: one line (oneLine), and escaped as a workflow command's message
// or property (escapeData, escapeProperty). redact.Set adds the quoted,
// JSON, URL and Base64 forms.
func addSecret(set *redact.Set, values ...string) {
	for _, v := range values {
		if strings.TrimSpace(v) == "" {
			continue
		}
		set.Add(v, oneLine(v), escapeData(v), escapeProperty(v))
	}
}

// escapeData escapes a workflow command's message as go-githubactions
// v1.3.0 (and the Actions toolkit's command.ts) does.
func escapeData(v string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(v)
}

// escapeProperty escapes a workflow command's property (an annotation's
// title) as go-githubactions v1.3.0 does.
func escapeProperty(v string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C").Replace(v)
}

// redactStrings replaces every secret in the strings v points to: the
// exported fields of structs, the elements of slices and arrays, the keys
// and values of maps, and what pointers point to. Slices, maps and
// pointers inside v are copied before anything in them changes, so that
// the data v was copied from (a verdict the report and the summary share)
// keeps its values.
func redactStrings(set *redact.Set, v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return
		}
		if v.CanSet() {
			c := reflect.New(v.Type().Elem())
			c.Elem().Set(v.Elem())
			v.Set(c)
		}
		redactStrings(set, v.Elem())
	case reflect.Map:
		if v.IsNil() || !v.CanSet() {
			return
		}
		c := reflect.MakeMapWithSize(v.Type(), v.Len())
		for it := v.MapRange(); it.Next(); {
			k := reflect.New(v.Type().Key()).Elem()
			k.Set(it.Key())
			e := reflect.New(v.Type().Elem()).Elem()
			e.Set(it.Value())
			redactStrings(set, k)
			redactStrings(set, e)
			c.SetMapIndex(k, e)
		}
		v.Set(c)
	case reflect.Struct:
		for i := range v.NumField() {
			if f := v.Field(i); f.CanSet() {
				redactStrings(set, f)
			}
		}
	case reflect.Slice:
		if v.IsNil() || !v.CanSet() {
			return
		}
		c := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		reflect.Copy(c, v)
		v.Set(c)
		for i := range c.Len() {
			redactStrings(set, c.Index(i))
		}
	case reflect.Array:
		for i := range v.Len() {
			redactStrings(set, v.Index(i))
		}
	case reflect.String:
		if v.CanSet() {
			v.SetString(set.String(v.String()))
		}
	}
}

// redactJSON returns data (the report) redacted. JSON whose strings were
// redacted already (redactStrings) is returned as given where redacting
// its text would break it: a secret that matches its syntax ("1" in a
// number) is no secret of its strings.
func redactJSON(set *redact.Set, data []byte) []byte {
	out := []byte(set.String(string(data)))
	if json.Valid(data) && !json.Valid(out) {
		return data
	}
	return out
}

// kubeSecretsOf returns the credentials a Kubernetes client configuration
// sends, whatever their source: the kubeconfig input, the files of
// $KUBECONFIG, the in-cluster service account, token and key files, an
// exec plugin's environment and an auth provider's settings.
func kubeSecretsOf(cfg *rest.Config) []string {
	var out []string
	add := func(vs ...string) {
		for _, v := range vs {
			if strings.TrimSpace(v) != "" {
				out = append(out, v)
			}
		}
	}
	add(cfg.BearerToken, cfg.Password, string(cfg.KeyData), redact.ReadFile(cfg.BearerTokenFile), redact.ReadFile(cfg.KeyFile))
	if e := cfg.ExecProvider; e != nil {
		for _, ev := range e.Env {
			add(ev.Value)
		}
	}
	if a := cfg.AuthProvider; a != nil {
		for _, v := range a.Config {
			add(v)
		}
	}
	return out
}

// kubeWarnings sends the warnings a Kubernetes API server returns to the
// Action's log (client-go's default writes them to stderr, around the
// redacting writer).
type kubeWarnings func(string)

// HandleWarningHeader implements rest.WarningHandler.
func (w kubeWarnings) HandleWarningHeader(code int, _ string, text string) {
	if code == 299 && text != "" {
		w(text)
	}
}
