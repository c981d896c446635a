//go:build unix

package dkim

import (
	"syscall"
	"time"
)

// CPUTime is the CPU time (user + system) this process has used so far;
// for the benchmarks (see ReportRates).
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
