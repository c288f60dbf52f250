// Package flatindex finds an element of a slice by its 64-bit key, for per-series state that a
// collector keeps millions of.
//
// It is written by hand for memory: open addressing (linear probing) over 4-byte positions in
// the caller's slice, whose elements hold the keys. A Go map from uint64 to a uint32 position
// takes a 16-byte slot plus a control byte per entry and grows by doubling, ~20 to 30 bytes a
// series; this takes 4 to 8. Keys must be hashes (seeded where an outsider chooses the input),
// so their low bits spread evenly.
package flatindex

// Keyed is an element of the indexed slice.
type Keyed interface{ Key() uint64 }

// Index maps keys to positions in a slice of Keyed. The zero value is an empty index. The
// caller passes the same slice to every call, as it stands then.
type Index struct {
	slots []uint32 // 0: empty; else 1 + position in the slice
	n     int
}

// Len is the number of positions indexed.
func (x *Index) Len() int { return x.n }

// Find returns the position of key in at.
func Find[T Keyed](x *Index, at []T, key uint64) (uint32, bool) {
	p := slot(x, at, key)
	if p < 0 {
		return 0, false
	}
	return x.slots[p] - 1, true
}

// Insert indexes position i, whose key is not in the index yet.
func Insert[T Keyed](x *Index, at []T, i uint32) {
	if (x.n+1)*4 > len(x.slots)*3 {
		grow(x, at, max(16, 2*len(x.slots)))
	}
	x.put(at[i].Key(), i)
}

func (x *Index) put(key uint64, i uint32) {
	mask := uint64(len(x.slots) - 1)
	p := key & mask
	for x.slots[p] != 0 {
		p = (p + 1) & mask
	}
	x.slots[p] = i + 1
	x.n++
}

func grow[T Keyed](x *Index, at []T, size int) {
	old := x.slots
	x.slots, x.n = make([]uint32, size), 0
	for _, v := range old {
		if v != 0 {
			x.put(at[v-1].Key(), v-1)
		}
	}
}

// Rebuild indexes every element of at, in a table sized for them: after the caller renumbered
// its slice, or to give back the room of a table that once held many more.
func Rebuild[T Keyed](x *Index, at []T) {
	size := 16
	for size*3 < len(at)*4 {
		size *= 2
	}
	x.slots, x.n = make([]uint32, size), 0
	for i := range at {
		x.put(at[i].Key(), uint32(i))
	}
}

// slot is where key's position is stored, or -1.
func slot[T Keyed](x *Index, at []T, key uint64) int {
	if x.n == 0 {
		return -1
	}
	mask := uint64(len(x.slots) - 1)
	for p := key & mask; ; p = (p + 1) & mask {
		v := x.slots[p]
		if v == 0 {
			return -1
		}
		if at[v-1].Key() == key {
			return int(p)
		}
	}
}

// Move records that the element with key now sits at position to (the caller moves it after
// this call or before, as long as at[to] or its old position holds key when Move runs).
func Move[T Keyed](x *Index, at []T, key uint64, to uint32) bool {
	p := slot(x, at, key)
	if p < 0 {
		return false
	}
	x.slots[p] = to + 1
	return true
}

// Delete takes key out of the index, shifting back the entries probed past it so that no
// tombstone is left (every element in at must still hold its key when Delete runs).
func Delete[T Keyed](x *Index, at []T, key uint64) bool {
	p := slot(x, at, key)
	if p < 0 {
		return false
	}
	mask := len(x.slots) - 1
	x.slots[p] = 0
	x.n--
	for j := (p + 1) & mask; x.slots[j] != 0; j = (j + 1) & mask {
		home := int(at[x.slots[j]-1].Key() & uint64(mask))
		// The entry at j may move to the hole at p unless its home lies cyclically in (p, j].
		if (j-home)&mask >= (j-p)&mask {
			x.slots[p], x.slots[j] = x.slots[j], 0
			p = j
		}
	}
	return true
}

// Oversized reports whether the table is more than eight times larger than its entries need,
// as after a burst of keys that since went away; Rebuild then gives the room back.
func (x *Index) Oversized() bool {
	return len(x.slots) > 64 && x.n*8 < len(x.slots)
}
