package main

import (
	"os"
	"runtime"
	"runtime/debug"
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
	var m memory
	if err := residentSet(os.Getpid(), &m); err != nil {
		t.Fatal(err)
	}
	if m.RSS < 1<<20 {
		t.Errorf("RSS = %d bytes, implausibly small for a Go test binary", m.RSS)
	}
	// A running Go binary has touched some of its text; all of RSS cannot
	// be file-backed, as the heap is not.
	if m.RSSFile == 0 || m.RSSFile >= m.RSS {
		t.Errorf("file-backed RSS = %d bytes of %d, want a part of it", m.RSSFile, m.RSS)
	}
}

func TestResidentSetPeakHoldsWhatWasReleased(t *testing.T) {
	// 64 MiB touched, read, then handed back to the kernel: RSS falls again,
	// the peak must not.
	const size = 64 << 20
	buf := make([]byte, size)
	for i := 0; i < size; i += 4096 {
		buf[i] = 1
	}
	var during memory
	if err := residentSet(os.Getpid(), &during); err != nil {
		t.Fatal(err)
	}
	runtime.KeepAlive(buf)
	if during.RSS < size {
		t.Fatalf("RSS = %d bytes with a %d-byte buffer touched, want at least the buffer", during.RSS, size)
	}
	debug.FreeOSMemory()
	var after memory
	if err := residentSet(os.Getpid(), &after); err != nil {
		t.Fatal(err)
	}
	// Linux counts RSS per CPU and reads it approximately, so the peak is
	// held to most of the buffer, not to the byte.
	if after.PeakRSS < after.RSS+size/2 {
		t.Errorf("peak RSS = %d bytes, RSS once the %d-byte buffer was released %d (%d while it was resident), want the peak above it by most of the buffer", after.PeakRSS, size, after.RSS, during.RSS)
	}
}

func TestResidentSetOfNoProcessIsAnError(t *testing.T) {
	if err := residentSet(-1, &memory{}); err == nil {
		t.Error("residentSet(-1) succeeded, want an error")
	}
}
