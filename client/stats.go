package client

import "sync/atomic"

// Stats are the client's counters since New. They are plain numbers so a
// daemon can export them into its own metrics registry.
type Stats struct {
	BytesRead     int64 // bytes returned by File reads
	BytesWritten  int64 // bytes accepted by File writes
	CacheHits     int64 // block-cache page hits
	CacheMisses   int64 // block-cache page misses
	CacheBytes    int64 // bytes in the block cache now
	CachePages    int   // pages in the block cache now
	BlocksFetched int64 // block GETs (whole or ranged) that succeeded
	BytesFetched  int64 // bytes those GETs returned
	LocalFetches  int64 // of BlocksFetched, those read in-process (Config.Local)
	FetchErrors   int64 // block GETs that failed on one member
	BlockPuts     int64 // block PUTs that succeeded
	BytesPut      int64 // bytes those PUTs carried
	PutErrors     int64 // block PUTs that failed on one member
	Prefetches    int64 // blocks fetched ahead of sequential reads
	Commits       int64 // commits sent
	Periodic      int64 // flushes started by the periodic commit (Config.CommitEvery)
	PeriodicFails int64 // of those, flushes that failed
	Discarded     int64 // uploaded blocks given back without a commit (failed or abandoned writes)
	MetaCalls     int64 // metaserver calls (first attempts)
	Retries       int64 // retries of transient errors (metaserver and blocks)
	DirtyBytes    int64 // bytes of all write buffers not uploaded yet, now
	DirtyPeak     int64 // the most DirtyBytes has been
	DirtyWaits    int64 // writes that waited for DirtyBytes to drain
}

// counters are the live values behind Stats.
type counters struct {
	bytesRead, bytesWritten        atomic.Int64
	blocksFetched, bytesFetched    atomic.Int64
	localFetches                   atomic.Int64
	fetchErrors                    atomic.Int64
	blockPuts, bytesPut, putErrors atomic.Int64
	prefetches, commits            atomic.Int64
	metaCalls, retries             atomic.Int64
	dirtyWaits                     atomic.Int64
	periodicCommits                atomic.Int64
	periodicFailures               atomic.Int64
	discarded                      atomic.Int64
}

// Stats returns a snapshot of the client's counters.
func (c *Client) Stats() Stats {
	cb, cp := c.cache.size()
	dirty, peak := c.dirty.load()
	return Stats{
		BytesRead:     c.stats.bytesRead.Load(),
		BytesWritten:  c.stats.bytesWritten.Load(),
		CacheHits:     c.cache.hits.Load(),
		CacheMisses:   c.cache.misses.Load(),
		CacheBytes:    cb,
		CachePages:    cp,
		BlocksFetched: c.stats.blocksFetched.Load(),
		BytesFetched:  c.stats.bytesFetched.Load(),
		LocalFetches:  c.stats.localFetches.Load(),
		FetchErrors:   c.stats.fetchErrors.Load(),
		BlockPuts:     c.stats.blockPuts.Load(),
		BytesPut:      c.stats.bytesPut.Load(),
		PutErrors:     c.stats.putErrors.Load(),
		Prefetches:    c.stats.prefetches.Load(),
		Commits:       c.stats.commits.Load(),
		Periodic:      c.stats.periodicCommits.Load(),
		PeriodicFails: c.stats.periodicFailures.Load(),
		Discarded:     c.stats.discarded.Load(),
		MetaCalls:     c.stats.metaCalls.Load(),
		Retries:       c.stats.retries.Load(),
		DirtyBytes:    dirty,
		DirtyPeak:     peak,
		DirtyWaits:    c.stats.dirtyWaits.Load(),
	}
}
