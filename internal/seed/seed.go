// Package seed gives randomised tests a generator they can replay.
package seed

import (
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"
)

// Rand returns a generator seeded from PROPERTY_SEED, or from the clock when
// it is unset, and logs the seed so that a failure can be replayed.
func Rand(t testing.TB) *rand.Rand {
	t.Helper()
	s := uint64(time.Now().UnixNano())
	if v := os.Getenv("PROPERTY_SEED"); v != "" {
		var err error
		if s, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("PROPERTY_SEED: %v", err)
		}
	}
	t.Logf("PROPERTY_SEED=%d", s)
	return rand.New(rand.NewPCG(s, s))
}
