package edgesim

import (
	"math"
	"strconv"
)

// How a sample's value moves between steps.
const (
	modelConst    uint8 = iota // spec values, info metrics, limits
	modelCounter               // grows with the age of its pod (or node); families share a rate
	modelGauge                 // oscillates around the captured value
	modelUnixSec               // a wall-clock timestamp in seconds (container_last_seen)
	modelStartSec              // when the pod (or node) started, in seconds: fixed for its lifetime
)

// valModel is one value slot of a template.
type valModel struct {
	base     float64
	model    uint8
	integral bool
	phase    uint8  // where the gauge's oscillation starts
	family   uint16 // counters in one family share their rate, so histograms stay monotonic
}

// sinTable holds one period of the gauges' oscillation.
var sinTable = func() (t [64]float64) {
	for i := range t {
		t[i] = math.Sin(2 * math.Pi * float64(i) / 64)
	}
	return t
}()

// valueCtx is what a value depends on besides its template.
type valueCtx struct {
	step     int64   // simulation step
	age      int64   // steps since the pod (or node) started
	scale    float64 // per-node (and per-pod) size factor
	instance uint64  // hash of the pod instance (or node)
	unixSec  float64 // wall clock of the step
	refSec   float64 // wall clock of the capture
	stepSec  float64 // length of a step in seconds
}

func (m *valModel) value(c *valueCtx) float64 {
	switch m.model {
	case modelCounter:
		rate := 0.002 + 0.018*unit(mix(c.instance, uint64(m.family)))
		return m.base * c.scale * (1 + rate*float64(c.age))
	case modelGauge:
		return m.base * c.scale * (1 + 0.1*sinTable[(int64(m.phase)+c.step*5)&63])
	case modelUnixSec:
		return c.unixSec + (m.base - c.refSec)
	case modelStartSec:
		return math.Round(c.unixSec - float64(c.age)*c.stepSec - (c.refSec - m.base))
	}
	return m.base
}

func appendValue(dst []byte, m *valModel, c *valueCtx) []byte {
	v := m.value(c)
	if m.integral && math.Abs(v) < 1<<62 {
		return strconv.AppendInt(dst, int64(v), 10)
	}
	return appendFloat(dst, v)
}

// appendFloat writes v with up to six decimals; much cheaper than strconv's shortest form, and
// the parsers accept any decimal notation.
func appendFloat(dst []byte, v float64) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) >= 1e12 {
		return strconv.AppendFloat(dst, v, 'g', -1, 64)
	}
	n := int64(math.Round(v * 1e6))
	if n < 0 {
		dst = append(dst, '-')
		n = -n
	}
	dst = strconv.AppendInt(dst, n/1e6, 10)
	frac := n % 1e6
	if frac == 0 {
		return dst
	}
	var digits [6]byte
	end := 6
	for i := 5; i >= 0; i-- {
		digits[i] = byte('0' + frac%10)
		frac /= 10
	}
	for end > 0 && digits[end-1] == '0' {
		end--
	}
	dst = append(dst, '.')
	return append(dst, digits[:end]...)
}

// mix is splitmix64's finaliser: a cheap, well-spread hash of two words.
func mix(a, b uint64) uint64 {
	z := a*0x9e3779b97f4a7c15 + b + 0x632be59bd9b4e019
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// unit maps a hash to [0, 1).
func unit(h uint64) float64 { return float64(h>>11) / (1 << 53) }

const hexDigits = "0123456789abcdef"

// appendHex writes n hex digits derived from h.
func appendHex(dst []byte, h uint64, n int) []byte {
	var w uint64
	for i := 0; i < n; i++ {
		if i%16 == 0 {
			w = mix(h, uint64(i))
		}
		dst = append(dst, hexDigits[(w>>(4*(i%16)))&15])
	}
	return dst
}

// appendUUID writes a version-4-shaped UUID derived from h.
func appendUUID(dst []byte, h uint64) []byte {
	b := appendHex(nil, h, 32)
	b[12] = '4'
	dst = append(dst, b[0:8]...)
	dst = append(dst, '-')
	dst = append(dst, b[8:12]...)
	dst = append(dst, '-')
	dst = append(dst, b[12:16]...)
	dst = append(dst, '-')
	dst = append(dst, b[16:20]...)
	dst = append(dst, '-')
	return append(dst, b[20:32]...)
}

const suffixChars = "bcdfghjklmnpqrstvwxz2456789" // the alphabet of Kubernetes' generated name suffixes

func appendSuffix(dst []byte, h uint64, n int) []byte {
	for i := 0; i < n; i++ {
		dst = append(dst, suffixChars[h%uint64(len(suffixChars))])
		h /= uint64(len(suffixChars))
	}
	return dst
}

func parseFloat(s string) (float64, error) { return strconv.ParseFloat(s, 64) }
