package sampleconv

import "time"

// DefaultMaxFutureSkew is how far ahead of the receiving host's clock a sample's own timestamp
// may be, in the kubeedge receiver (against its scrape time) and the objstore exporter (against
// its append time), under one key: max_future_skew. A node an hour fast would otherwise move a
// TSDB head (ours, Prometheus', Thanos Receive's) an hour ahead, after which every other node's
// samples are out of bounds; remote write answers 400 for the whole request.
const DefaultMaxFutureSkew = 10 * time.Minute

// ReasonClockSkew is the reason attribute of samples dropped for a timestamp beyond
// max_future_skew, in every component's drop counter.
const ReasonClockSkew = "clock_skew"
