// Command testplugin serves the phaseguard Argo Rollouts plugin and
// nothing else, for the rollouts package's tests while cmd/phaseguard
// cannot be built or lacks the plugin hook. It is what cmd/phaseguard does
// when the controller starts it.
package main

import (
	"fmt"
	"os"

	"github.com/phaseguard/phaseguard/rollouts"
)

func main() {
	if !rollouts.IsPluginProcess() {
		fmt.Fprintln(os.Stderr, "testplugin: this binary is started by the Argo Rollouts controller as a metric provider plugin")
		os.Exit(2)
	}
	rollouts.Main()
}
