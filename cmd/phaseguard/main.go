// Command phaseguard guards canary releases against phase-flip errors.
//
// One binary serves every front end: the CLI (evaluate, backtest, lint,
// demo, install-plugin), the GitHub Action (the action subcommand) and,
// when the Argo Rollouts controller starts it with ARGO_ROLLOUTS_RPC_PLUGIN
// set, the Argo Rollouts metric provider plugin. main only wires; see run.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/phaseguard/phaseguard/rollouts"
)

func main() {
	// The Argo Rollouts controller starts plugins with
	// ARGO_ROLLOUTS_RPC_PLUGIN set; serve the metric provider then, before
	// parsing anything.
	if rollouts.IsPluginProcess() {
		rollouts.Main()
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}
