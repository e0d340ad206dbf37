package agent

import (
	"log/slog"
	"sync"
)

// apiHealth logs the API server's reachability once per change of state, however many calls fail:
// during an outage Berth keeps retrying quietly, and says so once when it ends.
type apiHealth struct {
	log *slog.Logger

	mu      sync.Mutex
	down    bool
	lastErr string
	fails   int
}

func newAPIHealth(log *slog.Logger) *apiHealth { return &apiHealth{log: log} }

func (h *apiHealth) failed(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fails++
	if !h.down {
		h.down = true
		h.lastErr = err.Error()
		h.log.Warn("API server calls are failing; retrying with back-off, pods keep running", "err", err)
	}
}

func (h *apiHealth) ok() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.down {
		h.log.Info("API server calls work again", "failedCalls", h.fails)
		h.down = false
		h.fails = 0
	}
}
