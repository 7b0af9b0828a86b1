//go:build race

package rollouts_test

// raceEnabled builds the plugin binary with the race detector when the
// tests run with it, so the plugin process is checked too.
const raceEnabled = true
