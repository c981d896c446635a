//go:build !unix

package dkim

import "time"

// CPUTime is not measured here: ReportRates leaves msg/cpu-s out.
func CPUTime() time.Duration { return 0 }
