// Package sharedcomponent lets the signals of one configured component (its metrics, logs and
// traces instances) share one value, in the style of the Collector's and contrib's
// internal/sharedcomponent, with reference counting: the value starts with the first holder's
// Start and stops with the last started holder's Shutdown, so one signal stopping leaves the
// others running. A factory creates its Map in NewFactory, so nothing is package-level state.
package sharedcomponent

import (
	"context"
	"sync"

	"go.opentelemetry.io/collector/component"
)

// Map holds one shared value per key (a component.ID, or a *Config).
type Map[K comparable, V component.Component] struct {
	mu      sync.Mutex
	entries map[K]*entry[V]
}

// NewMap returns an empty Map.
func NewMap[K comparable, V component.Component]() *Map[K, V] {
	return &Map[K, V]{entries: map[K]*entry[V]{}}
}

// Len is the number of keys held, for tests.
func (m *Map[K, V]) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.entries)
}

// Hold returns a new holder of key's value, creating the value if no holder has it. The entry
// goes when its last holder shuts down (a holder that never started too: the Collector shuts
// down every component it built when a Start fails).
func (m *Map[K, V]) Hold(key K, create func() (V, error)) (*Ref[V], error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.entries[key]
	if e == nil {
		v, err := create()
		if err != nil {
			return nil, err
		}
		e = &entry[V]{value: v}
		m.entries[key] = e
	}
	e.holders++
	return &Ref[V]{e: e, leave: func() { m.leave(key, e) }}, nil
}

func (m *Map[K, V]) leave(key K, e *entry[V]) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e.holders--
	if e.holders == 0 && m.entries[key] == e {
		delete(m.entries, key)
	}
}

type entry[V component.Component] struct {
	value   V
	holders int // refs not yet shut down, under the Map's lock

	mu      sync.Mutex
	running int // refs started and not yet shut down
}

// Ref is one holder's handle on a shared value.
type Ref[V component.Component] struct {
	e     *entry[V]
	leave func()

	mu              sync.Mutex
	started, closed bool
}

// Value is the shared value.
func (r *Ref[V]) Value() V { return r.e.value }

// Start starts the value unless another holder did; a second Start of one Ref does nothing.
func (r *Ref[V]) Start(ctx context.Context, host component.Host) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started || r.closed {
		return nil
	}
	e := r.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.running == 0 {
		if err := e.value.Start(ctx, host); err != nil {
			return err
		}
	}
	e.running++
	r.started = true
	return nil
}

// Shutdown lets go of the value: the last started holder shuts it down, and the last holder
// removes it from the Map, so a later Hold builds a new one. A second Shutdown does nothing.
func (r *Ref[V]) Shutdown(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	defer r.leave()
	if !r.started {
		return nil
	}
	e := r.e
	e.mu.Lock()
	defer e.mu.Unlock()
	e.running--
	if e.running > 0 {
		return nil
	}
	return e.value.Shutdown(ctx)
}
