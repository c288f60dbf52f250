//go:build race

package edgesim

// raceEnabled scales the fleet tests down under the race detector, which makes scraping and
// parsing 1,000 nodes take many minutes; `go test` without -race runs the full fleet.
const raceEnabled = true
