package eviction

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
)

// fakeSignals returns whatever the test set.
type fakeSignals struct{ obs Observations }

func (f *fakeSignals) Observe(context.Context) (Observations, error) { return f.obs, nil }

func memObs(available string) Observations {
	return Observations{SignalMemoryAvailable: {Available: resource.MustParse(available), Capacity: resource.MustParse("8Gi")}}
}

type managerHarness struct {
	m        *Manager
	clock    *clocktesting.FakeClock
	signals  *fakeSignals
	active   []*v1.Pod
	usage    map[types.UID]PodUsage
	evicted  []string
	refuse   map[string]bool // Evict returns false for these
	messages map[string]string
	changes  int
	reclaims []Signal
	reclaim  func() // what reclaiming does to the signals
}

func newManagerHarness(t *testing.T, hard map[string]string) *managerHarness {
	t.Helper()
	ts, err := ParseThresholds(hard)
	if err != nil {
		t.Fatal(err)
	}
	h := &managerHarness{
		clock:    clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)),
		signals:  &fakeSignals{obs: memObs("4Gi")},
		usage:    map[types.UID]PodUsage{},
		refuse:   map[string]bool{},
		messages: map[string]string{},
	}
	h.m, err = NewManager(Config{
		Thresholds:               ts,
		PressureTransitionPeriod: 5 * time.Minute,
		Signals:                  h.signals,
		ActivePods:               func() []*v1.Pod { return slices.Clone(h.active) },
		PodUsage:                 func(context.Context) (map[types.UID]PodUsage, error) { return h.usage, nil },
		Evict: func(p *v1.Pod, e Eviction) bool {
			if h.refuse[p.Name] || slices.Contains(h.evicted, p.Name) { // as evictPod: once only
				return false
			}
			if e.Reason != "Evicted" || e.GracePeriodSeconds != 1 {
				t.Errorf("eviction of %s: %+v, want reason Evicted and a grace period of 1 s", p.Name, e)
			}
			h.evicted = append(h.evicted, p.Name)
			h.messages[p.Name] = e.Message
			return true
		},
		Reclaim: func(_ context.Context, s Signal) error {
			h.reclaims = append(h.reclaims, s)
			if h.reclaim != nil {
				h.reclaim()
			}
			return nil
		},
		OnChange: func() { h.changes++ },
		Clock:    h.clock,
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *managerHarness) sync() *v1.Pod { return h.m.Synchronize(context.Background()) }

func (h *managerHarness) remove(name string) {
	h.active = slices.DeleteFunc(h.active, func(p *v1.Pod) bool { return p.Name == name })
}

func TestManagerEvictsInRankOnePodAtATime(t *testing.T) {
	h := newManagerHarness(t, map[string]string{"memory.available": "100Mi"})
	guaranteed := testPod("guaranteed", "64Mi", "", 0)
	guaranteed.Spec.Containers[0].Resources.Limits = v1.ResourceList{v1.ResourceMemory: resource.MustParse("64Mi"), v1.ResourceCPU: resource.MustParse("1")}
	guaranteed.Spec.Containers[0].Resources.Requests[v1.ResourceCPU] = resource.MustParse("1")
	burstable := testPod("burstable", "10Mi", "", 0)
	besteffort := testPod("besteffort", "", "", 0)
	static := testPod("static", "", "", 0)
	static.Annotations = map[string]string{"kubernetes.io/config.source": "file"}
	mirror := testPod("mirror", "", "", 0)
	mirror.Annotations = map[string]string{"kubernetes.io/config.mirror": "abc"}
	critical := testPod("critical", "", "", SystemCriticalPriority)
	h.active = []*v1.Pod{guaranteed, burstable, besteffort, static, mirror, critical}
	h.usage = map[types.UID]PodUsage{
		guaranteed.UID: {MemoryWorkingSet: mi(60)},
		burstable.UID:  {MemoryWorkingSet: mi(20)},
		besteffort.UID: {MemoryWorkingSet: mi(900), Containers: map[string]ContainerUsage{"c": {MemoryWorkingSet: mi(900)}}},
		static.UID:     {MemoryWorkingSet: mi(4000)},
		mirror.UID:     {MemoryWorkingSet: mi(4000)},
		critical.UID:   {MemoryWorkingSet: mi(4000)},
	}

	if p := h.sync(); p != nil || len(h.m.Conditions()) != 0 {
		t.Fatalf("evicted %v / conditions %v without pressure", p, h.m.Conditions())
	}
	h.signals.obs = memObs("50Mi")
	if p := h.sync(); p == nil || p.Name != "besteffort" {
		t.Fatalf("first eviction: %v, want besteffort (critical pods are never evicted)", p)
	}
	want := "The node was low on resource: memory. Threshold quantity: 100Mi, available: 50Mi. Container c was using 900Mi, request is 0, has larger consumption of memory. "
	if got := h.messages["besteffort"]; got != want {
		t.Errorf("message\n%q\nwant\n%q", got, want)
	}
	if !slices.Equal(h.m.Conditions(), []v1.NodeConditionType{v1.NodeMemoryPressure}) || h.changes != 1 {
		t.Errorf("conditions %v after %d changes, want MemoryPressure after 1", h.m.Conditions(), h.changes)
	}
	// The evicted pod is still stopping: nothing more is evicted until it is gone (or 30 s pass).
	h.clock.Step(10 * time.Second)
	if p := h.sync(); p != nil {
		t.Fatalf("evicted %s while the last evicted pod was still stopping", p.Name)
	}
	h.remove("besteffort")
	h.clock.Step(10 * time.Second)
	if p := h.sync(); p == nil || p.Name != "burstable" {
		t.Fatalf("second eviction: %v, want burstable (over its request)", p)
	}
	// An evicted pod that never goes away blocks the next eviction for 30 s only.
	h.clock.Step(31 * time.Second)
	h.refuse["guaranteed"] = true // and one that cannot be evicted is skipped
	if p := h.sync(); p != nil {
		t.Fatalf("evicted %s, want nothing: burstable is stuck (then skipped) and guaranteed refused", p.Name)
	}
	if !slices.Equal(h.evicted, []string{"besteffort", "burstable"}) {
		t.Errorf("evicted %v", h.evicted)
	}
	h.remove("burstable")
	delete(h.refuse, "guaranteed")
	h.clock.Step(10 * time.Second)
	if p := h.sync(); p == nil || p.Name != "guaranteed" {
		t.Fatalf("third eviction: %v, want guaranteed", p)
	}
	h.remove("guaranteed")
	h.clock.Step(10 * time.Second)
	if p := h.sync(); p != nil {
		t.Fatalf("evicted %s: only critical pods are left", p.Name)
	}
}

func TestManagerTransitionPeriod(t *testing.T) {
	h := newManagerHarness(t, map[string]string{"memory.available": "100Mi"})
	h.signals.obs = memObs("50Mi")
	h.sync()
	h.clock.Step(10 * time.Second)
	h.sync() // last met here
	lastMet := h.clock.Now()
	h.signals.obs = memObs("2Gi")
	for _, d := range []time.Duration{10 * time.Second, 2 * time.Minute, 5*time.Minute - time.Second} {
		h.clock.SetTime(lastMet.Add(d))
		h.sync()
		if !h.m.HasCondition(v1.NodeMemoryPressure) {
			t.Fatalf("MemoryPressure cleared %s after the threshold was last met, within the 5m transition period", d)
		}
	}
	h.clock.SetTime(lastMet.Add(5 * time.Minute))
	h.sync()
	if h.m.HasCondition(v1.NodeMemoryPressure) {
		t.Fatal("MemoryPressure still set 5m after the threshold was last met")
	}
	if h.changes != 2 {
		t.Errorf("%d condition changes, want 2 (set, cleared)", h.changes)
	}
	// Met again: set again at once.
	h.signals.obs = memObs("1Mi")
	h.clock.Step(time.Second)
	h.sync()
	if !h.m.HasCondition(v1.NodeMemoryPressure) || h.changes != 3 {
		t.Errorf("MemoryPressure %v after %d changes", h.m.HasCondition(v1.NodeMemoryPressure), h.changes)
	}
}

func TestManagerReclaimsDiskBeforeEvicting(t *testing.T) {
	h := newManagerHarness(t, map[string]string{"nodefs.available": "10%", "pid.available": "1000"})
	p := testPod("p", "", "", 0)
	h.active = []*v1.Pod{p}
	h.usage = map[types.UID]PodUsage{p.UID: {EphemeralBytes: mi(10)}}
	full := Observation{Available: resource.MustParse("5Gi"), Capacity: resource.MustParse("100Gi")}
	h.signals.obs = Observations{SignalNodeFsAvailable: full}
	h.reclaim = func() {
		h.signals.obs = Observations{SignalNodeFsAvailable: {Available: resource.MustParse("20Gi"), Capacity: resource.MustParse("100Gi")}}
	}
	if ev := h.sync(); ev != nil {
		t.Fatalf("evicted %s although removing images freed enough", ev.Name)
	}
	if !slices.Equal(h.reclaims, []Signal{SignalNodeFsAvailable}) || !h.m.HasCondition(v1.NodeDiskPressure) {
		t.Fatalf("reclaims %v conditions %v", h.reclaims, h.m.Conditions())
	}
	// Reclaiming is not enough: a pod goes, with an ephemeral-storage message.
	h.reclaim = nil
	h.signals.obs = Observations{SignalNodeFsAvailable: full}
	if ev := h.sync(); ev == nil {
		t.Fatal("nothing evicted")
	}
	want := "The node was low on resource: ephemeral-storage. Threshold quantity: 10Gi, available: 5Gi. "
	if got := h.messages["p"]; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
	// PID pressure: no reclaim, PIDPressure.
	h.remove("p")
	q := testPod("q", "", "", 0)
	h.active = []*v1.Pod{q}
	h.reclaims = nil
	h.signals.obs = Observations{SignalPIDAvailable: {Available: *resource.NewQuantity(10, resource.DecimalSI), Capacity: *resource.NewQuantity(32768, resource.DecimalSI)}}
	if ev := h.sync(); ev == nil || ev.Name != "q" || len(h.reclaims) != 0 {
		t.Fatalf("evicted %v after reclaims %v", ev, h.reclaims)
	}
	if !h.m.HasCondition(v1.NodePIDPressure) {
		t.Errorf("conditions %v", h.m.Conditions())
	}
	if want := "The node was low on resource: pids. Threshold quantity: 1k, available: 10. "; h.messages["q"] != want {
		t.Errorf("message %q, want %q", h.messages["q"], want)
	}
}

func TestAdmit(t *testing.T) {
	besteffort := testPod("besteffort", "", "", 0)
	burstable := testPod("burstable", "10Mi", "", 0)
	tolerating := testPod("tolerating", "", "", 0)
	tolerating.Spec.Tolerations = []v1.Toleration{{Key: "node.kubernetes.io/memory-pressure", Operator: v1.TolerationOpExists, Effect: v1.TaintEffectNoSchedule}}
	static := testPod("static", "", "", 0)
	static.Annotations = map[string]string{"kubernetes.io/config.source": "file"}
	for _, tc := range []struct {
		obs  Observations
		want map[string]string // pod → message; absent: admitted
	}{
		{obs: memObs("4Gi"), want: map[string]string{}},
		{obs: memObs("1Mi"), want: map[string]string{"besteffort": "The node had condition: [MemoryPressure]. "}},
		{
			obs: Observations{SignalNodeFsAvailable: {Available: resource.MustParse("1Gi"), Capacity: resource.MustParse("100Gi")}},
			want: map[string]string{
				"besteffort": "The node had condition: [DiskPressure]. ",
				"burstable":  "The node had condition: [DiskPressure]. ",
				"tolerating": "The node had condition: [DiskPressure]. ",
			},
		},
		{
			obs: Observations{
				SignalMemoryAvailable: memObs("1Mi")[SignalMemoryAvailable],
				SignalNodeFsAvailable: {Available: resource.MustParse("1Gi"), Capacity: resource.MustParse("100Gi")},
			},
			want: map[string]string{
				"besteffort": "The node had condition: [MemoryPressure DiskPressure]. ",
				"burstable":  "The node had condition: [MemoryPressure DiskPressure]. ",
				"tolerating": "The node had condition: [MemoryPressure DiskPressure]. ",
			},
		},
	} {
		h := newManagerHarness(t, map[string]string{"memory.available": "100Mi", "nodefs.available": "10%"})
		h.signals.obs = tc.obs
		h.sync()
		for _, p := range []*v1.Pod{besteffort, burstable, tolerating, static} {
			err := h.m.Admit(p)
			want, refused := tc.want[p.Name]
			switch {
			case refused && (err == nil || err.Reason != "Evicted" || err.Message != want):
				t.Errorf("%v: %s: %v, want Evicted: %q", h.m.Conditions(), p.Name, err, want)
			case !refused && err != nil:
				t.Errorf("%v: %s refused: %v", h.m.Conditions(), p.Name, err)
			}
		}
	}
}
