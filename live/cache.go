package live

import (
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// packetCache keeps the last packets of one published track by sequence
// number so a viewer's NACK is answered from it. One cache per track
// serves every viewer: forwarded packets keep the publisher's sequence
// numbers (only SSRC and payload type are rewritten per viewer), so the
// numbers a viewer NACKs are the publisher's.
type packetCache struct {
	mu   sync.RWMutex // guards pkts; the track's reader writes, viewers' RTCP readers read
	mask uint16
	pkts []*rtp.Packet // slot seq&mask; a slot holds the latest packet that maps to it
}

// newPacketCache returns a cache of n packets rounded up to a power of two.
func newPacketCache(n int) *packetCache {
	size := 1
	for size < n {
		size <<= 1
	}
	return &packetCache{mask: uint16(size - 1), pkts: make([]*rtp.Packet, size)}
}

// put stores p, replacing the packet 'size' sequence numbers older.
// Packets are immutable once stored: readers share them.
func (c *packetCache) put(p *rtp.Packet) {
	c.mu.Lock()
	c.pkts[p.SequenceNumber&c.mask] = p
	c.mu.Unlock()
}

// get returns the packet with sequence number seq, or nil when it was
// never seen or has been replaced.
func (c *packetCache) get(seq uint16) *rtp.Packet {
	c.mu.RLock()
	p := c.pkts[seq&c.mask]
	c.mu.RUnlock()
	if p == nil || p.SequenceNumber != seq {
		return nil
	}
	return p
}

// resend answers a NACK: the cached packets it names, in the order
// named, and how many of them the cache no longer has.
func (c *packetCache) resend(n *rtcp.TransportLayerNack) (found []*rtp.Packet, missing int) {
	for _, pair := range n.Nacks {
		for _, seq := range pair.PacketList() {
			if p := c.get(seq); p != nil {
				found = append(found, p)
			} else {
				missing++
			}
		}
	}
	return found, missing
}

// keyframeGate rate-limits keyframe requests to one publisher: at most
// one per interval; a request inside the interval is remembered and sent
// when the interval has passed, so a viewer that joins just after another
// still gets its keyframe promptly. Not safe for concurrent use.
type keyframeGate struct {
	interval time.Duration
	last     time.Time // when the last request went out
	pending  bool      // a request arrived that has not gone out yet
}

// request notes a keyframe request at now and reports whether it should
// be sent now.
func (g *keyframeGate) request(now time.Time) bool {
	if g.last.IsZero() || now.Sub(g.last) >= g.interval {
		g.last, g.pending = now, false
		return true
	}
	g.pending = true
	return false
}

// due reports whether a remembered request should be sent now (and
// marks it sent).
func (g *keyframeGate) due(now time.Time) bool {
	if g.pending && now.Sub(g.last) >= g.interval {
		g.last, g.pending = now, false
		return true
	}
	return false
}

// lossCounter counts packets lost upstream from sequence-number gaps of
// one track (a reordered packet that fills a gap late is not subtracted:
// on loopback there are none, and over the internet the NACK generator
// fetches most of them again).
type lossCounter struct {
	started bool
	highest uint16
}

// observe returns the number of packets skipped before seq.
func (l *lossCounter) observe(seq uint16) int {
	if !l.started {
		l.started, l.highest = true, seq
		return 0
	}
	d := seq - l.highest
	if d == 0 || d >= 1<<15 { // a duplicate or an older packet
		return 0
	}
	l.highest = seq
	return int(d - 1)
}
