package live

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// Codec is one negotiated media format: what a published track carries
// and what its viewers must accept.
type Codec struct {
	Kind      webrtc.RTPCodecType
	MimeType  string // webrtc.MimeTypeH264, ...
	ClockRate uint32
	Channels  uint16
	Fmtp      string
	// PayloadType is the offer's number for this codec; the answer keeps it.
	PayloadType uint8
}

func (c Codec) capability(publisher bool) webrtc.RTPCodecCapability {
	return webrtc.RTPCodecCapability{MimeType: c.MimeType, ClockRate: c.ClockRate, Channels: c.Channels,
		SDPFmtpLine: c.Fmtp, RTCPFeedback: feedback(c.Kind, publisher)}
}

// feedback is the RTCP feedback the server negotiates. Video: NACK (a
// publisher's losses are asked again by pion's NACK generator, a viewer's
// are served from the packet cache), PLI and FIR (forwarded to the
// publisher). Publishers get transport-wide congestion control feedback
// (pion's TWCC interceptor), so the browser's sender adapts its rate to
// the path; viewers send REMB estimates, which the server records (there
// is one encoding per stream to choose from, so a viewer that cannot keep
// up is dropped instead).
func feedback(k webrtc.RTPCodecType, publisher bool) []webrtc.RTCPFeedback {
	var fb []webrtc.RTCPFeedback
	if publisher {
		fb = append(fb, webrtc.RTCPFeedback{Type: webrtc.TypeRTCPFBTransportCC})
	}
	if k == webrtc.RTPCodecTypeVideo {
		fb = append(fb, webrtc.RTCPFeedback{Type: "nack"}, webrtc.RTCPFeedback{Type: "nack", Parameter: "pli"},
			webrtc.RTCPFeedback{Type: "ccm", Parameter: "fir"})
		if !publisher {
			fb = append(fb, webrtc.RTCPFeedback{Type: webrtc.TypeRTCPFBGoogREMB})
		}
	}
	return fb
}

// Offer is what negotiation learned from an SDP offer: the one codec per
// kind that the session will carry (nil when the offer has no usable
// section of that kind).
type Offer struct {
	Video, Audio *Codec
}

// parseOffer parses an SDP offer and checks it has at least one audio or
// video section. It returns ErrBadOffer for anything else.
func parseOffer(raw []byte) (*sdp.SessionDescription, error) {
	var s sdp.SessionDescription
	if err := s.Unmarshal(raw); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadOffer, err)
	}
	media := 0
	for _, m := range s.MediaDescriptions {
		switch m.MediaName.Media {
		case "audio", "video":
			media++
		}
	}
	if media == 0 {
		return nil, fmt.Errorf("%w: no audio or video section", ErrBadOffer)
	}
	return &s, nil
}

// offered lists the codecs of one media section in the offer's order.
func offered(s *sdp.SessionDescription, m *sdp.MediaDescription) []sdp.Codec {
	var out []sdp.Codec
	for _, f := range m.MediaName.Formats {
		pt, err := strconv.ParseUint(f, 10, 8)
		if err != nil {
			continue
		}
		c, err := s.GetCodecForPayloadType(uint8(pt))
		if err != nil {
			continue
		}
		out = append(out, c)
	}
	return out
}

// fmtpParams parses "a=1;b=2" into a map with lower-case keys.
func fmtpParams(fmtp string) map[string]string {
	out := map[string]string{}
	for _, kv := range strings.Split(fmtp, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		if k != "" {
			out[strings.ToLower(k)] = v
		}
	}
	return out
}

// videoRank orders the video codecs a publisher may use: H.264 in
// packetization mode 1 first (players and the MP4 recording take it
// everywhere), constrained baseline before other profiles, then VP8.
// Zero means unusable.
func videoRank(c sdp.Codec) int {
	switch strings.ToUpper(c.Name) {
	case "H264":
		p := fmtpParams(c.Fmtp)
		if p["packetization-mode"] != "1" {
			return 0
		}
		if strings.HasPrefix(strings.ToLower(p["profile-level-id"]), "42e0") {
			return 4
		}
		if strings.HasPrefix(strings.ToLower(p["profile-level-id"]), "42") {
			return 3
		}
		return 2
	case "VP8":
		return 1
	}
	return 0
}

func audioRank(c sdp.Codec) int {
	if strings.EqualFold(c.Name, "opus") && c.ClockRate == 48000 {
		return 1
	}
	return 0
}

func toCodec(kind webrtc.RTPCodecType, c sdp.Codec) *Codec {
	out := &Codec{Kind: kind, ClockRate: c.ClockRate, Fmtp: c.Fmtp, PayloadType: c.PayloadType}
	switch strings.ToUpper(c.Name) {
	case "H264":
		out.MimeType = webrtc.MimeTypeH264
	case "VP8":
		out.MimeType = webrtc.MimeTypeVP8
	case "OPUS":
		out.MimeType, out.Channels = webrtc.MimeTypeOpus, 2
	}
	return out
}

// NegotiatePublish chooses, for a WHIP offer, the best codec of each kind
// (see videoRank); the first audio and first video section count, others
// are refused by the answer. ErrNoCodec when nothing is usable.
func NegotiatePublish(raw []byte) (Offer, error) {
	s, err := parseOffer(raw)
	if err != nil {
		return Offer{}, err
	}
	var o Offer
	for _, m := range s.MediaDescriptions {
		switch m.MediaName.Media {
		case "video":
			if o.Video != nil {
				continue
			}
			best, rank := sdp.Codec{}, 0
			for _, c := range offered(s, m) {
				if r := videoRank(c); r > rank {
					best, rank = c, r
				}
			}
			if rank > 0 {
				o.Video = toCodec(webrtc.RTPCodecTypeVideo, best)
			}
		case "audio":
			if o.Audio != nil {
				continue
			}
			for _, c := range offered(s, m) {
				if audioRank(c) > 0 {
					o.Audio = toCodec(webrtc.RTPCodecTypeAudio, c)
					break
				}
			}
		}
	}
	if o.Video == nil && o.Audio == nil {
		return Offer{}, fmt.Errorf("%w: want H.264 (packetization-mode=1), VP8 or Opus", ErrNoCodec)
	}
	return o, nil
}

// sameFormat reports whether an offered codec can carry the published
// one unchanged: same name and clock and, for H.264, the same
// packetization mode and profile_idc. The constraint flags and the level
// may differ: what publishers and files send in practice (baseline,
// constrained baseline, a level for the picture size) plays on decoders
// that announce any of them, and browsers announce several.
func sameFormat(pub Codec, c sdp.Codec) bool {
	if !strings.EqualFold("video/"+c.Name, pub.MimeType) && !strings.EqualFold("audio/"+c.Name, pub.MimeType) {
		return false
	}
	if c.ClockRate != pub.ClockRate {
		return false
	}
	if pub.MimeType != webrtc.MimeTypeH264 {
		return true
	}
	a, b := fmtpParams(pub.Fmtp), fmtpParams(c.Fmtp)
	if a["packetization-mode"] != b["packetization-mode"] {
		return false
	}
	pa, pb := strings.ToLower(a["profile-level-id"]), strings.ToLower(b["profile-level-id"])
	return len(pa) >= 2 && len(pb) >= 2 && pa[:2] == pb[:2]
}

// NegotiateView checks a WHEP offer against the codecs of a live stream:
// for each kind the stream publishes, the offer must carry it in a
// receiving section. It returns the fmtp line of the offer's matching
// codec per kind (what the viewer's answer will name), and ErrNoCodec when
// the viewer can take neither audio nor video of the stream.
func NegotiateView(raw []byte, pub Offer) (Offer, error) {
	s, err := parseOffer(raw)
	if err != nil {
		return Offer{}, err
	}
	var o Offer
	for _, m := range s.MediaDescriptions {
		var want *Codec
		switch {
		case m.MediaName.Media == "video" && pub.Video != nil && o.Video == nil:
			want = pub.Video
		case m.MediaName.Media == "audio" && pub.Audio != nil && o.Audio == nil:
			want = pub.Audio
		default:
			continue
		}
		if _, sendonly := m.Attribute("sendonly"); sendonly {
			continue
		}
		for _, c := range offered(s, m) {
			if sameFormat(*want, c) {
				got := *want
				got.Fmtp, got.PayloadType = c.Fmtp, c.PayloadType
				if want.Kind == webrtc.RTPCodecTypeVideo {
					o.Video = &got
				} else {
					o.Audio = &got
				}
				break
			}
		}
	}
	if o.Video == nil && o.Audio == nil {
		return Offer{}, fmt.Errorf("%w: the stream carries %s", ErrNoCodec, pub)
	}
	return o, nil
}

func (o Offer) String() string {
	var parts []string
	for _, c := range []*Codec{o.Video, o.Audio} {
		if c != nil {
			parts = append(parts, c.MimeType)
		}
	}
	return strings.Join(parts, " + ")
}
