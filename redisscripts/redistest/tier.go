package redistest

import (
	"os"
	"testing"
)

// SkipIfShort skips a test of the long tier (soaks, browsers, nginx, Redis
// Cluster, multi-second timers) under go test -short, so that the quick
// tier stays quick; why says what makes the test long. Under CI=true
// nothing skips, so CI always runs the whole suite.
func SkipIfShort(tb testing.TB, why string) {
	tb.Helper()
	if testing.Short() && os.Getenv("CI") != "true" {
		tb.Skipf("long tier (%s): runs without -short", why)
	}
}
