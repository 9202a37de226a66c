package main

import "sync"

// watchers tells open WatchCertificate streams that their certificate changed.
type watchers struct {
	mu   sync.Mutex
	subs map[string]map[chan struct{}]bool
}

func newWatchers() *watchers { return &watchers{subs: map[string]map[chan struct{}]bool{}} }

// subscribe returns a channel that is signalled after each change of the certificate.
func (w *watchers) subscribe(number string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	w.mu.Lock()
	if w.subs[number] == nil {
		w.subs[number] = map[chan struct{}]bool{}
	}
	w.subs[number][ch] = true
	w.mu.Unlock()
	return ch, func() {
		w.mu.Lock()
		delete(w.subs[number], ch)
		if len(w.subs[number]) == 0 {
			delete(w.subs, number)
		}
		w.mu.Unlock()
	}
}

func (w *watchers) notify(number string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for ch := range w.subs[number] {
		select {
		case ch <- struct{}{}:
		default: // a signal is pending: the watcher reads the newest status anyway
		}
	}
}
