//go:build !race

package rollouts_test

const raceEnabled = false
