package promtest

import "syscall"

// sysProcAttr makes the kernel kill Prometheus if the test binary dies
// without running its cleanups (a test timeout, a panic, SIGKILL).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
