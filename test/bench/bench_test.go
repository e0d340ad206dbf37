package main

import (
	"slices"
	"strings"
	"testing"
)

func TestMedianRun(t *testing.T) {
	// Each run's CPU is its wall/10 here, so that CPUs can be checked against Walls.
	run := func(wall float64, errMsg string) result {
		return result{Scenario: "burst-containerd-30", Agent: agentBerth, Wall: wall, CPU: wall / 10, Error: errMsg}
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
			var wantCPUs []float64
			for _, w := range tc.wantWalls {
				wantCPUs = append(wantCPUs, w/10)
			}
			if !slices.Equal(got.CPUs, wantCPUs) {
				t.Fatalf("medianRun: cpus %v, want %v", got.CPUs, wantCPUs)
			}
			if tc.wantError == "" && !strings.Contains(got.Note, "the run of median wall is shown") {
				t.Fatalf("note %q does not say the row is a median", got.Note)
			}
		})
	}
}

func TestMedianCPU(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    result
		want float64
	}{
		{"a single run: its CPU", result{CPU: 0.66}, 0.66},
		// The run of median wall (CPU 0.66) is not the run of median CPU.
		{"odd count: the middle CPU", result{CPU: 0.66, Walls: []float64{1.28, 0.92, 0.72}, CPUs: []float64{0.70, 0.66, 0.48}}, 0.66},
		{"the median CPU, not the median run's", result{CPU: 0.70, Walls: []float64{1.28, 0.92, 0.72}, CPUs: []float64{0.50, 0.70, 0.48}}, 0.50},
		{"even count: the lower middle", result{CPU: 4, CPUs: []float64{4, 1, 3, 2}}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := medianCPU(&tc.r); got != tc.want {
				t.Fatalf("medianCPU = %v, want %v", got, tc.want)
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
