package sharedcomponent

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
)

type counted struct {
	starts, stops int
	failStart     error
}

func (c *counted) Start(context.Context, component.Host) error {
	if c.failStart != nil {
		return c.failStart
	}
	c.starts++
	return nil
}

func (c *counted) Shutdown(context.Context) error {
	c.stops++
	return nil
}

func TestOneValuePerKeyStartedOnce(t *testing.T) {
	m := NewMap[string, *counted]()
	created := 0
	create := func() (*counted, error) { created++; return &counted{}, nil }
	a, err := m.Hold("id", create)
	require.NoError(t, err)
	b, err := m.Hold("id", create)
	require.NoError(t, err)
	other, err := m.Hold("other", create)
	require.NoError(t, err)
	assert.Equal(t, 2, created)
	assert.Same(t, a.Value(), b.Value())
	assert.NotSame(t, a.Value(), other.Value())

	ctx, host := context.Background(), componenttest.NewNopHost()
	require.NoError(t, a.Start(ctx, host))
	require.NoError(t, a.Start(ctx, host)) // a second Start of one holder counts once
	require.NoError(t, b.Start(ctx, host))
	v := a.Value()
	assert.Equal(t, 1, v.starts)

	require.NoError(t, a.Shutdown(ctx))
	require.NoError(t, a.Shutdown(ctx)) // and a second Shutdown too
	assert.Zero(t, v.stops, "b still holds it")
	assert.Equal(t, 2, m.Len())
	require.NoError(t, b.Shutdown(ctx))
	assert.Equal(t, 1, v.stops, "the last holder stops it")
	assert.Equal(t, 1, m.Len(), "and it leaves the map")

	c, err := m.Hold("id", create)
	require.NoError(t, err)
	assert.NotSame(t, v, c.Value(), "a later holder gets a new value")
	require.NoError(t, c.Shutdown(ctx))
	require.NoError(t, other.Shutdown(ctx))
	assert.Zero(t, m.Len())
	assert.Zero(t, c.Value().stops, "a holder that never started stops nothing")
}

func TestFailedStartIsNotCounted(t *testing.T) {
	m := NewMap[string, *counted]()
	boom := errors.New("boom")
	a, err := m.Hold("id", func() (*counted, error) { return &counted{failStart: boom}, nil })
	require.NoError(t, err)
	ctx := context.Background()
	require.ErrorIs(t, a.Start(ctx, componenttest.NewNopHost()), boom)
	require.NoError(t, a.Shutdown(ctx))
	assert.Zero(t, a.Value().stops, "what did not start is not stopped")
	assert.Zero(t, m.Len())

	_, err = m.Hold("bad", func() (*counted, error) { return nil, boom })
	require.ErrorIs(t, err, boom)
	assert.Zero(t, m.Len())
}
