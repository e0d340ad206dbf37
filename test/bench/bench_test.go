package main

import (
	"slices"
	"strings"
	"testing"
)

func TestMedianRun(t *testing.T) {
	run := func(wall float64, errMsg string) result {
		return result{Scenario: "burst-containerd-30", Agent: agentBerth, Wall: wall, Error: errMsg}
	}
	for _, tc := range []struct {
		name      string
		runs      []result
		wantWall  float64
		wantError string
		wantWalls []float64
	}{
		{"one run", []result{run(14, "")}, 14, "", []float64{14}},
		{"odd count: the middle", []result{run(17.5, ""), run(14.1, ""), run(15.2, "")}, 15.2, "", []float64{17.5, 14.1, 15.2}},
		{"even count: the lower middle", []result{run(18, ""), run(13, ""), run(16, ""), run(14, "")}, 14, "", []float64{18, 13, 16, 14}},
		{"a failure is returned, not hidden", []result{run(14, ""), run(0, "pods not ready"), run(15, "")}, 0, "pods not ready", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := medianRun(tc.runs)
			if got.Wall != tc.wantWall || got.Error != tc.wantError || !slices.Equal(got.Walls, tc.wantWalls) {
				t.Fatalf("medianRun = wall %v, error %q, walls %v; want %v, %q, %v", got.Wall, got.Error, got.Walls, tc.wantWall, tc.wantError, tc.wantWalls)
			}
			if tc.wantError == "" && !strings.Contains(got.Note, "the run of median wall is shown") {
				t.Fatalf("note %q does not say the row is a median", got.Note)
			}
		})
	}
}

func TestMachineCPU(t *testing.T) {
	busy, all := machineCPU()
	if all <= 0 || busy <= 0 || busy > all {
		t.Fatalf("machineCPU() = busy %v, all %v: want 0 < busy <= all", busy, all)
	}
}
