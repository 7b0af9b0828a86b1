// Package leaktest holds the cross-front-end credential leak test: one
// Prometheus-compatible server on loopback that quotes every request
// header back (promapitest.Echo), and the phaseguard binary run as the
// CLI, as the GitHub Action and as the Argo Rollouts plugin (through
// argo's RPC client) with a random secret in every credential input. The
// test reads every output, file and log each front end writes and finds
// none of the secrets in any of them. The package has no code of its own.
package leaktest
