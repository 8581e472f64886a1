//go:build race

package client

// raceEnabled scales heavy tests down under the race detector, which
// slows the data path about tenfold.
const raceEnabled = true
