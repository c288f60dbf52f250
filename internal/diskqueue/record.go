package diskqueue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
)

// On-disk record layout, little endian:
//
//	0  u32 payload length
//	4  u32 CRC32-C of bytes [8, 32+length)
//	8  u32 count (items in the payload, e.g. samples)
//	12 u32 tag (caller's routing key, e.g. a shard)
//	16 i64 min time (unix ms)
//	24 i64 max time (unix ms)
//	32 payload
const headerSize = 32

// maxPayload bounds the length field so a corrupt header cannot make us allocate gigabytes.
const maxPayload = 256 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errCorrupt marks a record that fails its checks; the caller decides what is lost.
var errCorrupt = errors.New("corrupt record")

// Meta describes a record. The queue stores it next to the payload so it can count and age
// records without decoding payloads.
type Meta struct {
	// Count is the number of items (samples) in the payload; drops are counted with it.
	Count uint32
	// Tag is free for the caller, e.g. the shard the record belongs to.
	Tag uint32
	// MinTime and MaxTime are the payload's oldest and newest item times in unix milliseconds.
	MinTime, MaxTime int64
}

// Record is one stored payload.
type Record struct {
	Meta
	Payload []byte
	// Offset is where the record starts and End where the next one starts, in the queue's
	// global byte stream. Commit(End) acknowledges the record and everything before it.
	Offset, End uint64
}

func encodeRecord(dst []byte, m Meta, payload []byte) []byte {
	var h [headerSize]byte
	binary.LittleEndian.PutUint32(h[0:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(h[8:], m.Count)
	binary.LittleEndian.PutUint32(h[12:], m.Tag)
	binary.LittleEndian.PutUint64(h[16:], uint64(m.MinTime))
	binary.LittleEndian.PutUint64(h[24:], uint64(m.MaxTime))
	crc := crc32.Update(0, castagnoli, h[8:])
	crc = crc32.Update(crc, castagnoli, payload)
	binary.LittleEndian.PutUint32(h[4:], crc)
	dst = append(dst, h[:]...)
	return append(dst, payload...)
}

func decodeHeader(h []byte) (length uint32, crc uint32, m Meta) {
	length = binary.LittleEndian.Uint32(h[0:])
	crc = binary.LittleEndian.Uint32(h[4:])
	m.Count = binary.LittleEndian.Uint32(h[8:])
	m.Tag = binary.LittleEndian.Uint32(h[12:])
	m.MinTime = int64(binary.LittleEndian.Uint64(h[16:]))
	m.MaxTime = int64(binary.LittleEndian.Uint64(h[24:]))
	return length, crc, m
}

// readRecordAt reads the record at pos of f, where limit is the number of bytes of f that
// belong to the segment. It returns the record's meta, payload and total size.
func readRecordAt(f *os.File, pos, limit int64) (Meta, []byte, int64, error) {
	var h [headerSize]byte
	if limit-pos < headerSize {
		return Meta{}, nil, 0, fmt.Errorf("%w: %d bytes left for a %d-byte header", errCorrupt, limit-pos, headerSize)
	}
	if _, err := f.ReadAt(h[:], pos); err != nil {
		return Meta{}, nil, 0, readErr(err)
	}
	length, crc, m := decodeHeader(h[:])
	size := headerSize + int64(length)
	if length > maxPayload || pos+size > limit {
		return m, nil, 0, fmt.Errorf("%w: length %d runs past the segment end", errCorrupt, length)
	}
	payload := make([]byte, length)
	if _, err := f.ReadAt(payload, pos+headerSize); err != nil {
		return m, nil, 0, readErr(err)
	}
	got := crc32.Update(crc32.Update(0, castagnoli, h[8:]), castagnoli, payload)
	if got != crc {
		return m, nil, 0, fmt.Errorf("%w: checksum %08x, want %08x", errCorrupt, got, crc)
	}
	return m, payload, size, nil
}

// readErr turns a short file into corruption: the segment is shorter than the queue expects.
func readErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: file ends early", errCorrupt)
	}
	return err
}

// scanHeaders walks record headers in [pos, limit) without reading payloads, for counting
// what a dropped segment held. It stops at the first header that does not fit; a last record
// cut short is counted when its header still looks sane, so a torn tail reports its items.
func scanHeaders(f *os.File, pos, limit int64) (records, items int) {
	var h [headerSize]byte
	for limit-pos >= headerSize {
		if _, err := f.ReadAt(h[:], pos); err != nil {
			return records, items
		}
		length, _, m := decodeHeader(h[:])
		if length > maxPayload || m.MinTime > m.MaxTime {
			return records, items
		}
		records++
		items += int(m.Count)
		pos += headerSize + int64(length)
	}
	return records, items
}
