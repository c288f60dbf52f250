package scrapeconv

// seriesIndex finds a series by the hash of its text. It is written by hand for memory: open
// addressing (linear probing) over 4-byte indexes into Converter.seriesAt, whose entries hold
// the keys. A Go map from uint64 to uint32 takes a 16-byte slot plus a control byte per entry
// and grows by doubling, ~26 bytes a series here; this takes 4 to 8. Keys are seeded hashes,
// so the low bits spread evenly. Series are only added between rebuilds: a scrape that fails or
// evicts series renumbers them and rebuilds the index, which steady scrapes do not do.
type seriesIndex struct {
	slots []uint32 // 0: empty; else 1 + index in seriesAt
	n     int
}

func (x *seriesIndex) find(at []series, key uint64) (uint32, bool) {
	if x.n == 0 {
		return 0, false
	}
	mask := uint64(len(x.slots) - 1)
	for p := key & mask; ; p = (p + 1) & mask {
		v := x.slots[p]
		if v == 0 {
			return 0, false
		}
		if at[v-1].key == key {
			return v - 1, true
		}
	}
}

// insert adds series i (not in the index) under at[i].key.
func (x *seriesIndex) insert(at []series, i uint32) {
	if (x.n+1)*4 > len(x.slots)*3 {
		x.grow(at, max(16, 2*len(x.slots)))
	}
	x.put(at[i].key, i)
}

func (x *seriesIndex) put(key uint64, i uint32) {
	mask := uint64(len(x.slots) - 1)
	p := key & mask
	for x.slots[p] != 0 {
		p = (p + 1) & mask
	}
	x.slots[p] = i + 1
	x.n++
}

func (x *seriesIndex) grow(at []series, size int) {
	old := x.slots
	x.slots, x.n = make([]uint32, size), 0
	for _, v := range old {
		if v != 0 {
			x.put(at[v-1].key, v-1)
		}
	}
}

// rebuild indexes every series of at, in a table sized for them.
func (x *seriesIndex) rebuild(at []series) {
	size := 16
	for size*3 < len(at)*4 {
		size *= 2
	}
	x.slots, x.n = make([]uint32, size), 0
	for i := range at {
		x.put(at[i].key, uint32(i))
	}
}
