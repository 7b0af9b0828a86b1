// Command argo-oldest-loader installs and drives a metric provider plugin
// with the plugin loader of the oldest Argo Rollouts release phaseguard
// supports (v1.7.2, pinned in this module's go.mod), exactly as that
// controller does at start-up and for every measurement:
//
//  1. utils/config.InitializeConfig reads the argo-rollouts-config
//     ConfigMap (here from a file, served by a client-go fake clientset);
//  2. utils/plugin.DownloadPlugins fetches every plugin it names into
//     ./plugin-bin/ORG/NAME of the working directory, an http(s) location
//     checked against the entry's sha256, a file:// location copied;
//  3. metricproviders/plugin.NewRpcPlugin starts the plugin with the
//     entry's args over go-plugin and dispenses argo's RPC client.
//
// It is its own module because v1.7.2 is built against the Kubernetes
// v0.29 libraries, which phaseguard's module (v0.37) cannot share.
//
// Usage:
//
//	argo-oldest-loader -configmap FILE < CALLS > RESULTS
//
// FILE is a ConfigMap in YAML or JSON; its metadata.namespace is the
// controller's namespace (POD_NAMESPACE). Run it in an empty working
// directory: argo installs plugins relative to it.
//
// CALLS holds one JSON object per line:
//
//	{"call": "type"|"metadata"|"run"|"resume"|"terminate"|"gc",
//	 "analysisRun": AnalysisRun, "metric": "NAME", "measurement": Measurement}
//
// metric names the metric of analysisRun.spec.metrics to call, its args
// already resolved (the controller resolves them before calling a
// provider). resume and terminate take measurement, or when it is
// absent the last measurement returned for the same run and metric.
// Each call prints one JSON line: {"call", "type", "metadata",
// "measurement", "error"}.
//
// Exit status: 0 when every call was made; 1 on a bad call; 2 when argo
// refused to install or start the plugin (the message on stderr is
// argo's, e.g. a sha256 mismatch).
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"

	metricplugin "github.com/argoproj/argo-rollouts/metricproviders/plugin"
	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	argoconfig "github.com/argoproj/argo-rollouts/utils/config"
	"github.com/argoproj/argo-rollouts/utils/defaults"
	argoplugin "github.com/argoproj/argo-rollouts/utils/plugin"
	goplugin "github.com/hashicorp/go-plugin"
	corev1 "k8s.io/api/core/v1"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/yaml"
)

// call is one line of input. Its own fields are decoded strictly; the
// AnalysisRun and Measurement as the controller's client decodes what
// the API server sends (fields of later Argo releases are ignored).
type call struct {
	Call        string          `json:"call"`
	AnalysisRun json.RawMessage `json:"analysisRun"`
	Metric      string          `json:"metric"`
	Measurement json.RawMessage `json:"measurement"`
}

// result is one line of output.
type result struct {
	Call        string                `json:"call"`
	Type        string                `json:"type,omitempty"`
	Metadata    map[string]string     `json:"metadata,omitempty"`
	Measurement *v1alpha1.Measurement `json:"measurement,omitempty"`
	Error       string                `json:"error,omitempty"`
}

func main() {
	cmFile := flag.String("configmap", "", "the argo-rollouts-config ConfigMap, YAML or JSON")
	flag.Parse()
	if *cmFile == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: argo-oldest-loader -configmap FILE < CALLS")
		os.Exit(1)
	}
	if err := install(*cmFile); err != nil {
		fmt.Fprintf(os.Stderr, "argo-oldest-loader: %v\n", err)
		os.Exit(2)
	}
	code := serve(os.Stdin, os.Stdout)
	// Kill the plugin processes argo's client started (Managed: true).
	goplugin.CleanupClients()
	os.Exit(code)
}

// install runs argo's start-up: the ConfigMap read, the plugins fetched.
func install(cmFile string) error {
	data, err := os.ReadFile(cmFile)
	if err != nil {
		return fmt.Errorf("configmap: %w", err)
	}
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict(data, &cm); err != nil {
		return fmt.Errorf("configmap %s: %w", cmFile, err)
	}
	if cm.Name != defaults.DefaultRolloutsConfigMapName || cm.Namespace == "" {
		return fmt.Errorf("configmap %s: want %s with a namespace, got %q in %q", cmFile, defaults.DefaultRolloutsConfigMapName, cm.Name, cm.Namespace)
	}
	if err := os.Setenv("POD_NAMESPACE", cm.Namespace); err != nil {
		return err
	}
	kube := k8sfake.NewSimpleClientset(&cm)
	if _, err := argoconfig.InitializeConfig(kube, defaults.DefaultRolloutsConfigMapName); err != nil {
		return fmt.Errorf("InitializeConfig: %w", err)
	}
	if err := argoplugin.DownloadPlugins(argoplugin.FileDownloaderImpl{}); err != nil {
		return fmt.Errorf("DownloadPlugins: %w", err)
	}
	return nil
}

// serve makes the calls read from in, printing one result each to out.
func serve(in io.Reader, out io.Writer) int {
	type key struct{ run, metric string }
	last := map[key]v1alpha1.Measurement{}
	enc := json.NewEncoder(out)
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for line := 1; sc.Scan(); line++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var c call
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			fmt.Fprintf(os.Stderr, "argo-oldest-loader: call on line %d: %v\n", line, err)
			return 1
		}
		var run v1alpha1.AnalysisRun
		if err := json.Unmarshal(c.AnalysisRun, &run); err != nil {
			fmt.Fprintf(os.Stderr, "argo-oldest-loader: call on line %d: analysisRun: %v\n", line, err)
			return 1
		}
		var m *v1alpha1.Metric
		for i := range run.Spec.Metrics {
			if run.Spec.Metrics[i].Name == c.Metric {
				m = &run.Spec.Metrics[i]
			}
		}
		if m == nil {
			fmt.Fprintf(os.Stderr, "argo-oldest-loader: call on line %d: analysisRun %q has no metric %q\n", line, run.Name, c.Metric)
			return 1
		}
		k := key{run.Namespace + "/" + run.Name, c.Metric}
		measurement := last[k]
		if len(c.Measurement) > 0 {
			measurement = v1alpha1.Measurement{}
			if err := json.Unmarshal(c.Measurement, &measurement); err != nil {
				fmt.Fprintf(os.Stderr, "argo-oldest-loader: call on line %d: measurement: %v\n", line, err)
				return 1
			}
		}
		r := result{Call: c.Call}
		// As the controller, a provider per call: argo's client keeps one
		// plugin process per plugin name.
		p, err := metricplugin.NewRpcPlugin(*m)
		if err != nil {
			fmt.Fprintf(os.Stderr, "argo-oldest-loader: NewRpcPlugin: %v\n", err)
			return 2
		}
		switch c.Call {
		case "type":
			r.Type = p.Type()
		case "metadata":
			r.Metadata = p.GetMetadata(*m)
		case "run":
			got := p.Run(&run, *m)
			r.Measurement = &got
		case "resume":
			got := p.Resume(&run, *m, measurement)
			r.Measurement = &got
		case "terminate":
			got := p.Terminate(&run, *m, measurement)
			r.Measurement = &got
		case "gc":
			if err := p.GarbageCollect(&run, *m, 10); err != nil {
				r.Error = err.Error()
			}
		default:
			fmt.Fprintf(os.Stderr, "argo-oldest-loader: call on line %d: unknown call %q\n", line, c.Call)
			return 1
		}
		if r.Measurement != nil {
			last[k] = *r.Measurement
		}
		if err := enc.Encode(r); err != nil {
			fmt.Fprintf(os.Stderr, "argo-oldest-loader: %v\n", err)
			return 1
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintf(os.Stderr, "argo-oldest-loader: reading calls: %v\n", err)
		return 1
	}
	return 0
}
