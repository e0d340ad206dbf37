package agent

import (
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// backoff tracks, per key, how long to wait before the next attempt of something that keeps failing:
// a crashing container (10s doubling to 5m) or an image pull (10s doubling to 5m). The first failure
// is retried at once; each retry after that waits twice as long as the one before, up to max. A key
// whose last attempt is older than 2×max (10 minutes of clean running for a container) starts over.
type backoff struct {
	clock   clock.PassiveClock
	initial time.Duration
	max     time.Duration

	mu      sync.Mutex
	entries map[string]*backoffEntry
}

type backoffEntry struct {
	delay      time.Duration
	lastUpdate time.Time
}

func newBackoff(c clock.PassiveClock, initial, max time.Duration) *backoff {
	return &backoff{clock: c, initial: initial, max: max, entries: map[string]*backoffEntry{}}
}

// next records an attempt made because of a failure at eventTime, and grows the delay.
func (b *backoff) next(key string, eventTime time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.entries[key]
	if e == nil || eventTime.Sub(e.lastUpdate) > 2*b.max {
		b.entries[key] = &backoffEntry{delay: b.initial, lastUpdate: eventTime}
		return
	}
	e.delay = min(2*e.delay, b.max)
	e.lastUpdate = eventTime
}

// wait reports how long is left before the thing that failed at eventTime may be tried again
// (0: now).
func (b *backoff) wait(key string, eventTime time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.entries[key]
	if e == nil {
		return 0
	}
	if eventTime.Sub(e.lastUpdate) > 2*b.max {
		return 0 // ran cleanly long enough: next() will start over
	}
	if left := e.delay - b.clock.Since(eventTime); left > 0 {
		return left
	}
	return 0
}

// forget drops the keys that start with prefix (a pod's, when it goes).
func (b *backoff) forget(prefix string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for k := range b.entries {
		if len(k) >= len(prefix) && k[:len(prefix)] == prefix {
			delete(b.entries, k)
		}
	}
}

// waitSinceUpdate reports how long is left of the current delay counted from the last failure
// (for things retried on a timer, such as image pulls, rather than after an exit).
func (b *backoff) waitSinceUpdate(key string) time.Duration {
	b.mu.Lock()
	e := b.entries[key]
	b.mu.Unlock()
	if e == nil {
		return 0
	}
	return b.wait(key, e.lastUpdate)
}

// delay is the key's current delay, for messages ("back-off 20s restarting failed container").
func (b *backoff) delay(key string) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e := b.entries[key]; e != nil {
		return e.delay
	}
	return 0
}
