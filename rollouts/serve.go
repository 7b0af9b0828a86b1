package rollouts

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/argoproj/argo-rollouts/metricproviders/plugin/rpc"
	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"

	"github.com/phaseguard/phaseguard/internal/redact"
)

// Handshake is Argo Rollouts' handshake for metric provider plugins: the
// controller starts the plugin binary with MagicCookieKey=MagicCookieValue
// in its environment, and go-plugin checks it on both sides.
var Handshake = goplugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "ARGO_ROLLOUTS_RPC_PLUGIN",
	MagicCookieValue: "metricprovider",
}

// PluginKey is the name the controller dispenses the plugin by.
const PluginKey = "RpcMetricProviderPlugin"

// Environment variables read by [Main] (and EnvConnectionsFile,
// EnvPolicyDir).
const (
	// EnvLogFormat set to "json" makes the plugin log JSON lines (the
	// controller's go-plugin client then re-logs them with their level).
	EnvLogFormat = "PHASEGUARD_LOG_FORMAT"
	// EnvLogLevel sets the level: trace, debug, info (default), warn,
	// error.
	EnvLogLevel = "PHASEGUARD_LOG_LEVEL"
)

// IsPluginProcess reports whether the process was started by the Argo
// Rollouts controller as a metric provider plugin. main must check it
// before parsing flags: the controller passes no subcommand.
func IsPluginProcess() bool {
	return os.Getenv(Handshake.MagicCookieKey) == Handshake.MagicCookieValue
}

// DefaultMemoryLimit is the Go soft memory limit Main sets when the
// environment has no GOMEMLIMIT. The plugin runs inside the controller's
// container and is called for every AnalysisRun at once; its live memory
// is mostly the AnalysisRuns the controller sends, and the default GC
// pacing would let garbage double it. A soft limit only makes the GC work
// earlier (the runtime caps that work at half the CPU), it never fails an
// allocation. Set GOMEMLIMIT in the controller's environment to change it.
const DefaultMemoryLimit = 32 << 20

// Main serves the plugin with a logger configured from the environment
// (PHASEGUARD_LOG_FORMAT, PHASEGUARD_LOG_LEVEL) writing to stderr, which
// go-plugin forwards to the controller's log, redacted with the set the
// plugin learns the operator's and the Kubernetes client's credentials
// into (what a log line says about a measurement is redacted with that
// measurement's own set first), and the soft memory
// limit DefaultMemoryLimit unless GOMEMLIMIT is set. The process's
// arguments are the args of the plugin's entry in the argo-rollouts-config
// ConfigMap (see [ParseArgs]). It returns when the controller closes the
// plugin. phaseguard's main calls it first thing, before parsing flags:
//
//	if rollouts.IsPluginProcess() {
//		rollouts.Main()
//		return
//	}
func Main() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(DefaultMemoryLimit)
	}
	secrets := redact.New()
	out := secrets.Writer(os.Stderr)
	defer out.Flush()
	logger := NewLogger(out, os.Getenv)
	opts, err := ParseArgs(os.Args[1:], os.Getenv)
	if err != nil {
		// Served anyway: every measurement is an Error saying why, where
		// a plugin that exits shows only as "unable to start plugin".
		opts = append(opts, withSetupError(err))
	}
	Serve(logger, append(opts, WithRedact(secrets))...)
}

// ParseArgs reads the plugin's command-line arguments, which the
// controller takes from the args of the plugin's entry in the
// argo-rollouts-config ConfigMap, and its environment:
//
//	--connections=FILE  the operator's connections file (see Connection),
//	                    an absolute path; default $PHASEGUARD_CONNECTIONS_FILE
//	--policy-dir=DIR    the operator's policy directory, the only place
//	                    templates may name policy files in (see
//	                    WithPolicyDir), an absolute path; default
//	                    $PHASEGUARD_POLICY_DIR
func ParseArgs(args []string, getenv func(string) string) ([]Option, error) {
	fs := flag.NewFlagSet("phaseguard plugin", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	conns := fs.String("connections", getenv(EnvConnectionsFile), "the operator's connections file")
	policyDir := fs.String("policy-dir", getenv(EnvPolicyDir), "the operator's policy directory")
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("plugin args (argo-rollouts-config): %w", err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("plugin args (argo-rollouts-config): unexpected argument %q (known: --connections=FILE, --policy-dir=DIR)", fs.Arg(0))
	}
	var opts []Option
	var errs []error
	if *conns != "" {
		if !filepath.IsAbs(*conns) {
			errs = append(errs, fmt.Errorf("plugin args (argo-rollouts-config): --connections %q: want an absolute path", *conns))
		}
		opts = append(opts, WithConnectionsFile(*conns))
	}
	if *policyDir != "" {
		if !filepath.IsAbs(*policyDir) {
			errs = append(errs, fmt.Errorf("plugin args (argo-rollouts-config): --policy-dir %q: want an absolute path", *policyDir))
		}
		opts = append(opts, WithPolicyDir(*policyDir))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return opts, nil
}

// NewLogger returns the plugin's logger: hclog to w, JSON when
// getenv(PHASEGUARD_LOG_FORMAT) is "json", at getenv(PHASEGUARD_LOG_LEVEL)
// (default info).
func NewLogger(w io.Writer, getenv func(string) string) hclog.Logger {
	level := hclog.LevelFromString(getenv(EnvLogLevel))
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:       "phaseguard",
		Output:     w,
		Level:      level,
		JSONFormat: strings.EqualFold(getenv(EnvLogFormat), "json"),
	})
}

// Serve serves a [Plugin] over go-plugin with Argo's handshake, logging to
// logger, until the controller closes the plugin. Extra options configure
// the plugin (clock, Kubernetes lister).
func Serve(logger hclog.Logger, opts ...Option) {
	ServeConfig(logger, nil, opts...)
}

// ServeConfig is Serve with go-plugin's test configuration, for serving
// the plugin inside a test process (test may be nil).
func ServeConfig(logger hclog.Logger, test *goplugin.ServeTestConfig, opts ...Option) {
	impl := New(append([]Option{WithLogger(logger)}, opts...)...)
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins: map[string]goplugin.Plugin{
			PluginKey: &rpc.RpcMetricProviderPlugin{Impl: impl},
		},
		Logger: logger,
		Test:   test,
	})
}
