//go:build !race

package edgesim

const raceEnabled = false
