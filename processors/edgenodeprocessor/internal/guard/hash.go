package guard

import (
	"hash/maphash"
	"math"
	"math/bits"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// Hasher computes series identities: a resource's attributes, then the metric name, then a data
// point's attributes. Attribute maps are hashed without sorting: each key/value pair is hashed on
// its own and the pair hashes are added, which does not depend on the order and allocates nothing.
type Hasher struct {
	seed maphash.Seed
}

// NewHasher returns a Hasher with a random seed; identities are only comparable within one Hasher.
func NewHasher() Hasher {
	return Hasher{seed: maphash.MakeSeed()}
}

// Attributes hashes an attribute map.
func (h Hasher) Attributes(m pcommon.Map) uint64 {
	return mix(h.sum(m))
}

func (h Hasher) sum(m pcommon.Map) uint64 {
	var sum uint64
	for k, v := range m.All() {
		sum += h.pair(k, v)
	}
	return sum + uint64(m.Len())
}

// Scope combines a resource hash with an instrumentation scope's name, version and attributes
// (the kubeedge receiver carries each endpoint's target labels there).
func (h Hasher) Scope(resource uint64, scope pcommon.InstrumentationScope) uint64 {
	return mix(resource ^ maphash.String(h.seed, scope.Name()) ^
		bits.RotateLeft64(maphash.String(h.seed, scope.Version()), 32) ^
		bits.RotateLeft64(h.sum(scope.Attributes()), 16))
}

// Metric combines a resource hash with a metric name.
func (h Hasher) Metric(resource uint64, name string) uint64 {
	return mix(resource ^ maphash.String(h.seed, name))
}

// Series combines a metric hash with a data point's attribute hash.
func (h Hasher) Series(metric uint64, attrs pcommon.Map) uint64 {
	return mum(metric, h.sum(attrs))
}

// KeyCache remembers the hashes of the keys at the first positions of the last attribute map:
// the points of one metric nearly always carry the same keys in the same order, and comparing a
// short key costs less than hashing it. Use one per goroutine; the zero value is ready.
type KeyCache [8]struct {
	key  string
	hash uint64
}

// SeriesCached is Series with key hashes taken from kc where the keys match.
func (h Hasher) SeriesCached(metric uint64, attrs pcommon.Map, kc *KeyCache) uint64 {
	var sum uint64
	j := 0
	for k, v := range attrs.All() {
		var hk uint64
		if j < len(kc) {
			if c := &kc[j]; c.key == k {
				hk = c.hash
			} else {
				hk = maphash.String(h.seed, k)
				c.key, c.hash = k, hk
			}
		} else {
			hk = maphash.String(h.seed, k)
		}
		sum += mum(hk, h.value(v))
		j++
	}
	return mum(metric, sum+uint64(attrs.Len()))
}

// pair hashes key and value apart (two short hashes cost less than copying them into one buffer)
// and combines them with mum, which is not symmetric: swapping key and value changes the result.
func (h Hasher) pair(k string, v pcommon.Value) uint64 {
	return mum(maphash.String(h.seed, k), h.value(v))
}

func (h Hasher) value(v pcommon.Value) uint64 {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		return maphash.String(h.seed, v.Str())
	case pcommon.ValueTypeInt:
		return mix(uint64(v.Int()) ^ 0x2)
	case pcommon.ValueTypeDouble:
		return mix(math.Float64bits(v.Double()) ^ 0x3)
	case pcommon.ValueTypeBool:
		if v.Bool() {
			return mix(0x41)
		}
		return mix(0x40)
	case pcommon.ValueTypeEmpty:
		return mix(0x5)
	default:
		// Maps, slices and bytes are rare as metric attributes; AsString allocates but is exact.
		return mix(maphash.String(h.seed, v.AsString()) ^ uint64(v.Type()))
	}
}

// mum is wyhash's mixing step: the 128-bit product of the two inputs, each xored with its own
// constant, folded to 64 bits. One multiplication, and every input bit reaches the output.
func mum(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a^0xa0761d6478bd642f, b^0xe7037ed1a0b428db)
	return hi ^ lo
}

// mix is the splitmix64 finalizer: it spreads every input bit over the output.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
