package main

import (
	"os"
	"testing"
)

func TestThousands(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 5020: "5,020", 1234567: "1,234,567"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestTargetRSSHoldsRunsFrom20000NodesToThe50000NodeGoal(t *testing.T) {
	for _, tc := range []struct {
		nodes int
		limit uint64
		at    int
	}{
		{nodes: 20, limit: 64 << 20, at: 5000},
		{nodes: 5020, limit: 64 << 20, at: 5000},
		{nodes: 19999, limit: 64 << 20, at: 5000},
		{nodes: 20000, limit: 200 << 20, at: 50000},
		{nodes: 50020, limit: 200 << 20, at: 50000},
	} {
		if limit, at := targetRSS(tc.nodes); limit != tc.limit || at != tc.at {
			t.Errorf("targetRSS(%d) = %d at %d Nodes, want %d at %d", tc.nodes, limit, at, tc.limit, tc.at)
		}
	}
}

func TestResidentSetReadsThisProcess(t *testing.T) {
	rss, file, err := residentSet(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if rss < 1<<20 {
		t.Errorf("RSS = %d bytes, implausibly small for a Go test binary", rss)
	}
	// A running Go binary has touched some of its text; all of RSS cannot
	// be file-backed, as the heap is not.
	if file == 0 || file >= rss {
		t.Errorf("file-backed RSS = %d bytes of %d, want a part of it", file, rss)
	}
}

func TestResidentSetOfNoProcessIsAnError(t *testing.T) {
	if _, _, err := residentSet(-1); err == nil {
		t.Error("residentSet(-1) succeeded, want an error")
	}
}
