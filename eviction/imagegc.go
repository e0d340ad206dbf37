package eviction

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"sync"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/clock"
)

// The kubelet's image garbage collection defaults.
const (
	DefaultImageGCHighThresholdPercent = 85
	DefaultImageGCLowThresholdPercent  = 80
	DefaultImageMinimumGCAge           = 2 * time.Minute
	// DefaultImageGCPeriod is how often image usage is checked (the kubelet's 5 minutes).
	DefaultImageGCPeriod = 5 * time.Minute
)

// ImageRuntime is what image garbage collection needs of the runtime.
type ImageRuntime interface {
	ListImages(ctx context.Context) ([]*runtimeapi.Image, error)
	RemoveImage(ctx context.Context, image string) error
	ListContainers(ctx context.Context, filter *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error)
	ImageFsInfo(ctx context.Context) ([]*runtimeapi.FilesystemUsage, error)
	ImageStatus(ctx context.Context, image string) (*runtimeapi.Image, error)
}

// ImageGCConfig configures image garbage collection.
type ImageGCConfig struct {
	// HighThresholdPercent (85): above this use of the image filesystem, images are removed until
	// LowThresholdPercent (80) is reached. 100 disables it.
	HighThresholdPercent int
	LowThresholdPercent  int
	// MinimumGCAge (2m) is how long an image must have been unused before it may go.
	MinimumGCAge time.Duration
	Period       time.Duration // 5m

	Runtime ImageRuntime
	// Fs reads the image filesystem's size (statfs of ImageFsInfo's mountpoint).
	Fs FsReader
	// SandboxImage names the runtime's sandbox (pause) image, which is always kept: runtimes that
	// do not pin it (containerd 1.6) would otherwise lose it while no pod runs, and a node without
	// a registry could not start a pod again. nil or "": none.
	SandboxImage func(ctx context.Context) (string, error)
	// Event records a node event (ImageGCFailed, FreeDiskSpaceFailed); nil for none.
	Event  func(eventType, reason, message string)
	Clock  clock.WithTicker
	Logger *slog.Logger
}

// imageRecord is what the collector knows of an image.
type imageRecord struct {
	firstDetected time.Time
	lastUsed      time.Time // zero: never seen in use
	size          int64
	pinned        bool
}

// ImageGC removes the images no container uses, least recently used first, when the image
// filesystem fills up, as the kubelet's image manager does:
//   - an image is in use while any container (running or not) refers to it, by id, tag or digest;
//     those images, the runtime's sandbox image and its pinned images are never removed;
//   - an image is a candidate once unused for MinimumGCAge (counted from when Berth first saw it);
//   - candidates go least recently used first (never used before any used), until the
//     filesystem is back at LowThresholdPercent.
type ImageGC struct {
	cfg ImageGCConfig
	log *slog.Logger

	mu     sync.Mutex
	images map[string]*imageRecord // by image id
}

// NewImageGC checks cfg and fills in the defaults.
func NewImageGC(cfg ImageGCConfig) (*ImageGC, error) {
	if cfg.Runtime == nil || cfg.Fs == nil {
		return nil, errors.New("image GC: Runtime and Fs are required")
	}
	if cfg.HighThresholdPercent == 0 {
		cfg.HighThresholdPercent = DefaultImageGCHighThresholdPercent
	}
	if cfg.LowThresholdPercent == 0 {
		cfg.LowThresholdPercent = DefaultImageGCLowThresholdPercent
	}
	if err := ValidateImageGC(cfg.HighThresholdPercent, cfg.LowThresholdPercent); err != nil {
		return nil, err
	}
	if cfg.MinimumGCAge < 0 {
		return nil, fmt.Errorf("imageMinimumGCAge must not be negative, got %s", cfg.MinimumGCAge)
	}
	if cfg.Period <= 0 {
		cfg.Period = DefaultImageGCPeriod
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &ImageGC{cfg: cfg, log: cfg.Logger, images: map[string]*imageRecord{}}, nil
}

// ValidateImageGC checks the thresholds as the kubelet does.
func ValidateImageGC(high, low int) error {
	switch {
	case high < 0 || high > 100:
		return fmt.Errorf("imageGCHighThresholdPercent must be between 0 and 100, got %d", high)
	case low < 0 || low > 100:
		return fmt.Errorf("imageGCLowThresholdPercent must be between 0 and 100, got %d", low)
	case low > high:
		return fmt.Errorf("imageGCLowThresholdPercent (%d) must not be above imageGCHighThresholdPercent (%d)", low, high)
	}
	return nil
}

// Run notes image usage and collects every Period until ctx ends.
func (g *ImageGC) Run(ctx context.Context) {
	t := g.cfg.Clock.NewTicker(g.cfg.Period)
	defer t.Stop()
	for {
		if err := g.GarbageCollect(ctx); err != nil && ctx.Err() == nil {
			g.log.Warn("image garbage collection failed", "err", err)
			if g.cfg.Event != nil {
				g.cfg.Event("Warning", "ImageGCFailed", err.Error())
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
	}
}

// detect lists images and containers, records new images and marks those in use as used now. It
// returns the ids of the images in use.
func (g *ImageGC) detect(ctx context.Context, now time.Time) (map[string]bool, error) {
	images, err := g.cfg.Runtime.ListImages(ctx)
	if err != nil {
		return nil, err
	}
	containers, err := g.cfg.Runtime.ListContainers(ctx, nil)
	if err != nil {
		return nil, err
	}
	refs := map[string]bool{} // what containers refer to: ids, tags, digests
	for _, c := range containers {
		refs[c.GetImageRef()] = true
		refs[c.GetImage().GetImage()] = true
		if id := c.GetImageId(); id != "" {
			refs[id] = true
		}
	}
	inUse := map[string]bool{}
	if g.cfg.SandboxImage != nil {
		name, err := g.cfg.SandboxImage(ctx)
		if err != nil {
			return nil, fmt.Errorf("the runtime's sandbox image: %w", err)
		}
		if name != "" {
			img, err := g.cfg.Runtime.ImageStatus(ctx, name)
			if err != nil {
				return nil, fmt.Errorf("the runtime's sandbox image %s: %w", name, err)
			}
			if img != nil {
				refs[img.GetId()] = true
			}
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	present := map[string]bool{}
	for _, img := range images {
		id := img.GetId()
		present[id] = true
		r := g.images[id]
		if r == nil {
			r = &imageRecord{firstDetected: now}
			g.images[id] = r
		}
		r.size, r.pinned = int64(img.GetSize()), img.GetPinned()
		used := refs[id]
		for _, t := range img.GetRepoTags() {
			used = used || refs[t]
		}
		for _, d := range img.GetRepoDigests() {
			used = used || refs[d]
		}
		if used {
			inUse[id] = true
			r.lastUsed = now
		}
	}
	for id := range g.images {
		if !present[id] {
			delete(g.images, id)
		}
	}
	return inUse, nil
}

// usage reads the image filesystem: capacity and available bytes.
func (g *ImageGC) usage(ctx context.Context) (capacity, available int64, err error) {
	fss, err := g.cfg.Runtime.ImageFsInfo(ctx)
	if err != nil {
		return 0, 0, err
	}
	for _, f := range fss {
		if mp := f.GetFsId().GetMountpoint(); mp != "" {
			st, err := g.cfg.Fs.ReadFs(mp)
			if err != nil {
				return 0, 0, err
			}
			return st.CapacityBytes, st.AvailableBytes, nil
		}
	}
	return 0, 0, errors.New("the runtime reports no image filesystem")
}

// GarbageCollect removes images when the image filesystem is at or above HighThresholdPercent
// used, until it is at LowThresholdPercent.
func (g *ImageGC) GarbageCollect(ctx context.Context) error {
	now := g.cfg.Clock.Now()
	inUse, err := g.detect(ctx, now)
	if err != nil {
		return err
	}
	if g.cfg.HighThresholdPercent >= 100 {
		return nil
	}
	capacity, available, err := g.usage(ctx)
	if err != nil {
		return err
	}
	if capacity <= 0 {
		return fmt.Errorf("image filesystem has an invalid capacity of %d bytes", capacity)
	}
	usedPercent := 100 - int(available*100/capacity)
	if usedPercent < g.cfg.HighThresholdPercent {
		return nil
	}
	toFree := capacity*int64(100-g.cfg.LowThresholdPercent)/100 - available
	g.log.Info("image filesystem above the high threshold: removing unused images",
		"usedPercent", usedPercent, "highThresholdPercent", g.cfg.HighThresholdPercent, "bytesToFree", toFree)
	freed, err := g.freeSpace(ctx, toFree, now, inUse)
	if err != nil {
		return err
	}
	if freed < toFree {
		return fmt.Errorf("Failed to garbage collect required amount of images. Attempted to free %d bytes, but only found %d bytes eligible to free.", toFree, freed)
	}
	return nil
}

// DeleteUnusedImages removes every image that may go (eviction's reclaim under disk pressure).
func (g *ImageGC) DeleteUnusedImages(ctx context.Context) error {
	now := g.cfg.Clock.Now()
	inUse, err := g.detect(ctx, now)
	if err != nil {
		return err
	}
	_, err = g.freeSpace(ctx, math.MaxInt64, now, inUse)
	return err
}

// Candidates are the images that may be removed now, in the order they would be: least recently
// used first, then first detected first.
func (g *ImageGC) candidates(now time.Time, inUse map[string]bool) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var ids []string
	for id, r := range g.images {
		if inUse[id] || r.pinned || now.Sub(r.firstDetected) < g.cfg.MinimumGCAge {
			continue
		}
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		a, b := g.images[ids[i]], g.images[ids[j]]
		if !a.lastUsed.Equal(b.lastUsed) {
			return a.lastUsed.Before(b.lastUsed)
		}
		if !a.firstDetected.Equal(b.firstDetected) {
			return a.firstDetected.Before(b.firstDetected)
		}
		return ids[i] < ids[j]
	})
	return ids
}

// freeSpace removes candidates until toFree bytes are freed; it returns what it freed.
func (g *ImageGC) freeSpace(ctx context.Context, toFree int64, now time.Time, inUse map[string]bool) (int64, error) {
	var freed int64
	var errs []error
	for _, id := range g.candidates(now, inUse) {
		if freed >= toFree {
			break
		}
		g.mu.Lock()
		size := g.images[id].size
		g.mu.Unlock()
		if err := g.cfg.Runtime.RemoveImage(ctx, id); err != nil {
			errs = append(errs, fmt.Errorf("remove image %s: %w", id, err))
			continue
		}
		g.log.Info("removed unused image", "image", id, "size", size)
		g.mu.Lock()
		delete(g.images, id)
		g.mu.Unlock()
		freed += size
	}
	return freed, errors.Join(errs...)
}
