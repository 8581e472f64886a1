package live

import (
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

func pkt(seq uint16) *rtp.Packet {
	return &rtp.Packet{Header: rtp.Header{SequenceNumber: seq}, Payload: []byte{byte(seq)}}
}

func TestPacketCacheResend(t *testing.T) {
	c := newPacketCache(100) // rounds to 128
	if len(c.pkts) != 128 {
		t.Fatalf("size %d, want 128", len(c.pkts))
	}
	// 65500..65535, 0..99: wraps around the 16-bit sequence space and
	// overwrites the first slots.
	for s := 65500; s < 65536+100; s++ {
		c.put(pkt(uint16(s)))
	}
	tests := []struct {
		name    string
		nacks   []rtcp.NackPair
		found   []uint16
		missing int
	}{
		{"one recent", []rtcp.NackPair{{PacketID: 99}}, []uint16{99}, 0},
		{"bitmask", []rtcp.NackPair{{PacketID: 90, LostPackets: 0b101}}, []uint16{90, 91, 93}, 0},
		{"across wrap", []rtcp.NackPair{{PacketID: 65535, LostPackets: 0b11}}, []uint16{65535, 0, 1}, 0},
		{"just kept", []rtcp.NackPair{{PacketID: 65508}}, []uint16{65508}, 0},
		{"evicted", []rtcp.NackPair{{PacketID: 65507}}, nil, 1},
		{"never sent", []rtcp.NackPair{{PacketID: 1000}}, nil, 1},
		{"two pairs", []rtcp.NackPair{{PacketID: 10}, {PacketID: 20, LostPackets: 1}}, []uint16{10, 20, 21}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			found, missing := c.resend(&rtcp.TransportLayerNack{Nacks: tt.nacks})
			if missing != tt.missing {
				t.Errorf("missing %d, want %d", missing, tt.missing)
			}
			if len(found) != len(tt.found) {
				t.Fatalf("found %d packets, want %v", len(found), tt.found)
			}
			for i, p := range found {
				if p.SequenceNumber != tt.found[i] {
					t.Errorf("found[%d] = %d, want %d", i, p.SequenceNumber, tt.found[i])
				}
			}
		})
	}
}

func TestKeyframeGate(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	g := keyframeGate{interval: 500 * time.Millisecond}
	steps := []struct {
		at      int
		request bool // request (true) or poll due (false)
		want    bool
	}{
		{0, true, true},      // first request goes out
		{100, true, false},   // inside the interval: remembered
		{200, false, false},  // not due yet
		{499, false, false},  // still not
		{500, false, true},   // the remembered one goes out
		{600, false, false},  // nothing pending
		{1200, true, true},   // a fresh request after the interval
		{1300, true, false},  // coalesced...
		{1400, true, false},  // ...with this one
		{1700, false, true},  // one request for both
		{1800, false, false}, // and only one
	}
	for i, s := range steps {
		var got bool
		if s.request {
			got = g.request(ms(s.at))
		} else {
			got = g.due(ms(s.at))
		}
		if got != s.want {
			t.Fatalf("step %d (t=%dms request=%v): got %v, want %v", i, s.at, s.request, got, s.want)
		}
	}
}

func TestLossCounter(t *testing.T) {
	tests := []struct {
		seqs []uint16
		lost int
	}{
		{[]uint16{1, 2, 3}, 0},
		{[]uint16{1, 3, 4}, 1},
		{[]uint16{1, 5}, 3},
		{[]uint16{65534, 65535, 0, 1}, 0},
		{[]uint16{65534, 1}, 2},
		{[]uint16{10, 9, 11}, 0}, // late packet
		{[]uint16{10, 10, 11}, 0},
	}
	for _, tt := range tests {
		var l lossCounter
		lost := 0
		for _, s := range tt.seqs {
			lost += l.observe(s)
		}
		if lost != tt.lost {
			t.Errorf("%v: lost %d, want %d", tt.seqs, lost, tt.lost)
		}
	}
}
