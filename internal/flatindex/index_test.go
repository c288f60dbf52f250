package flatindex

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

type item uint64

func (i item) Key() uint64 { return uint64(i) }

// removeAt is how a caller deletes: out of the index, then the last element moved into the hole.
func removeAt(x *Index, at []item, i uint32) []item {
	last := uint32(len(at) - 1)
	Delete(x, at, at[i].Key())
	if i != last {
		Move(x, at, at[last].Key(), i)
		at[i] = at[last]
	}
	return at[:last]
}

// Against a Go map, through inserts, swap-removes, rebuilds and growth, with keys chosen to
// collide in their low bits so that probe chains run long and wrap around the table.
func TestIndexMatchesAMap(t *testing.T) {
	for _, spread := range []uint64{1, 7, 1 << 20} {
		r := rand.New(rand.NewPCG(1, spread))
		var x Index
		var at []item
		want := map[uint64]uint32{}
		for step := range 20_000 {
			switch op := r.IntN(10); {
			case op < 6 || len(at) == 0:
				k := r.Uint64N(spread*64) << 3 // low bits shared
				if _, ok := want[k]; ok {
					continue
				}
				at = append(at, item(k))
				Insert(&x, at, uint32(len(at)-1))
				want[k] = uint32(len(at) - 1)
			case op < 9:
				i := uint32(r.IntN(len(at)))
				delete(want, at[i].Key())
				if last := uint32(len(at) - 1); i != last {
					want[at[last].Key()] = i
				}
				at = removeAt(&x, at, i)
			default:
				if x.Oversized() || step%1000 == 0 {
					Rebuild(&x, at)
				}
			}
			require.Equal(t, len(want), x.Len())
		}
		for k, i := range want {
			got, ok := Find(&x, at, k)
			require.True(t, ok, "key %d", k)
			require.Equal(t, i, got)
		}
		for range 1000 {
			k := r.Uint64()
			if _, ok := want[k]; !ok {
				_, found := Find(&x, at, k)
				require.False(t, found)
			}
		}
	}
}

func TestEmptyAndMissing(t *testing.T) {
	var x Index
	_, ok := Find(&x, []item(nil), 5)
	require.False(t, ok)
	require.False(t, Delete(&x, []item(nil), 5))
	require.False(t, Move(&x, []item(nil), 5, 0))
	at := []item{16, 32}
	Rebuild(&x, at)
	require.False(t, Delete(&x, at, 48))
	require.True(t, Delete(&x, at, 16))
	_, ok = Find(&x, at, 32)
	require.True(t, ok, "the entry probed past the deleted one is still found")
}

// The table shrinks back after a burst only through Rebuild, which Oversized asks for.
func TestOversized(t *testing.T) {
	var x Index
	at := make([]item, 0, 1000)
	for i := range 1000 {
		at = append(at, item(uint64(i)*0x9e3779b97f4a7c15))
		Insert(&x, at, uint32(i))
	}
	require.False(t, x.Oversized())
	for len(at) > 10 {
		at = removeAt(&x, at, 0)
	}
	require.True(t, x.Oversized())
	Rebuild(&x, at)
	require.False(t, x.Oversized())
	require.Len(t, x.slots, 16)
}
