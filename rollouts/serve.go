package rollouts

import (
	"io"
	"os"
	"runtime/debug"
	"strings"

	"github.com/argoproj/argo-rollouts/metricproviders/plugin/rpc"
	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
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

// Environment variables read by [Main].
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
// go-plugin forwards to the controller's log, and the soft memory limit
// DefaultMemoryLimit unless GOMEMLIMIT is set. It returns when the
// controller closes the plugin. phaseguard's main calls it first thing,
// before parsing flags (the controller passes none):
//
//	if rollouts.IsPluginProcess() {
//		rollouts.Main()
//		return
//	}
func Main() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(DefaultMemoryLimit)
	}
	Serve(NewLogger(os.Stderr, os.Getenv))
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
