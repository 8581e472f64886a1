package live

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/pion/webrtc/v4"
)

// offerSDP builds an SDP offer with one section per media line; a media
// line is "video sendonly 96 H264/90000 packetization-mode=1;profile-level-id=42e01f, 97 VP8/90000".
func offerSDP(sections ...string) string {
	var b strings.Builder
	b.WriteString("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n")
	for i, sec := range sections {
		kind, rest, _ := strings.Cut(sec, " ")
		dir, codecs, _ := strings.Cut(rest, " ")
		var pts []string
		var attrs strings.Builder
		for _, c := range strings.Split(codecs, ", ") {
			f := strings.Fields(c)
			pts = append(pts, f[0])
			fmt.Fprintf(&attrs, "a=rtpmap:%s %s\r\n", f[0], f[1])
			if len(f) > 2 {
				fmt.Fprintf(&attrs, "a=fmtp:%s %s\r\n", f[0], f[2])
			}
		}
		fmt.Fprintf(&b, "m=%s 9 UDP/TLS/RTP/SAVPF %s\r\nc=IN IP4 0.0.0.0\r\na=mid:%d\r\na=%s\r\n%s",
			kind, strings.Join(pts, " "), i, dir, attrs.String())
	}
	return b.String()
}

const (
	h264CB   = "102 H264/90000 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
	h264Main = "104 H264/90000 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f"
	h264PM0  = "106 H264/90000 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f"
	vp8c     = "96 VP8/90000"
	vp9      = "98 VP9/90000 profile-id=0"
	av1      = "45 AV1/90000"
	opus     = "111 opus/48000/2 minptime=10;useinbandfec=1"
	pcmu     = "0 PCMU/8000"
)

func mime(c *Codec) string {
	if c == nil {
		return "-"
	}
	return c.MimeType
}

func TestNegotiatePublish(t *testing.T) {
	tests := []struct {
		name         string
		offer        string
		video, audio string
		fmtp         string // of the chosen video codec, when set
		err          error
	}{
		{"chromium order", offerSDP("audio sendonly "+opus, "video sendonly "+vp8c+", "+vp9+", "+h264PM0+", "+h264CB+", "+av1),
			webrtc.MimeTypeH264, webrtc.MimeTypeOpus, "profile-level-id=42e01f", nil},
		{"main profile only", offerSDP("video sendonly " + h264Main),
			webrtc.MimeTypeH264, "-", "profile-level-id=4d001f", nil},
		{"baseline before main", offerSDP("video sendonly " + h264Main + ", " + h264CB),
			webrtc.MimeTypeH264, "-", "42e01f", nil},
		{"vp8 when no h264", offerSDP("video sendonly "+vp9+", "+vp8c, "audio sendonly "+opus),
			webrtc.MimeTypeVP8, webrtc.MimeTypeOpus, "", nil},
		{"packetization mode 0 only", offerSDP("video sendonly "+h264PM0, "audio sendonly "+opus),
			"-", webrtc.MimeTypeOpus, "", nil},
		{"audio only", offerSDP("audio sendonly " + pcmu + ", " + opus), "-", webrtc.MimeTypeOpus, "", nil},
		{"no usable codec", offerSDP("video sendonly "+vp9+", "+av1, "audio sendonly "+pcmu), "-", "-", "", ErrNoCodec},
		{"no media", offerSDP(), "-", "-", "", ErrBadOffer},
		{"application only", offerSDP("application sendonly 5000 webrtc-datachannel/0"), "-", "-", "", ErrBadOffer},
		{"garbage", "hello", "-", "-", "", ErrBadOffer},
		{"empty", "", "-", "-", "", ErrBadOffer},
		{"truncated", offerSDP("video sendonly " + h264CB)[:40], "-", "-", "", ErrBadOffer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := NegotiatePublish([]byte(tt.offer))
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if mime(o.Video) != tt.video || mime(o.Audio) != tt.audio {
				t.Errorf("chose %s + %s, want %s + %s", mime(o.Video), mime(o.Audio), tt.video, tt.audio)
			}
			if tt.fmtp != "" && !strings.Contains(o.Video.Fmtp, tt.fmtp) {
				t.Errorf("video fmtp %q, want it to contain %q", o.Video.Fmtp, tt.fmtp)
			}
		})
	}
}

func TestNegotiateView(t *testing.T) {
	pubH264 := Offer{
		Video: &Codec{Kind: webrtc.RTPCodecTypeVideo, MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			Fmtp: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"},
		Audio: &Codec{Kind: webrtc.RTPCodecTypeAudio, MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2},
	}
	pubVP8 := Offer{Video: &Codec{Kind: webrtc.RTPCodecTypeVideo, MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}}
	tests := []struct {
		name         string
		pub          Offer
		offer        string
		video, audio string
		err          error
	}{
		{"both", pubH264, offerSDP("audio recvonly "+opus, "video recvonly "+vp8c+", "+h264CB),
			webrtc.MimeTypeH264, webrtc.MimeTypeOpus, nil},
		{"h264 other level", pubH264, offerSDP("video recvonly " + strings.Replace(h264CB, "42e01f", "42e034", 1)),
			webrtc.MimeTypeH264, "-", nil},
		{"h264 other profile", pubH264, offerSDP("video recvonly "+h264Main, "audio recvonly "+opus),
			"-", webrtc.MimeTypeOpus, nil},
		{"h264 mode 0", pubH264, offerSDP("video recvonly " + h264PM0), "-", "-", ErrNoCodec},
		{"sendonly viewer", pubH264, offerSDP("video sendonly "+h264CB, "audio sendonly "+opus), "-", "-", ErrNoCodec},
		{"vp8", pubVP8, offerSDP("video recvonly "+h264CB+", "+vp8c, "audio recvonly "+opus), webrtc.MimeTypeVP8, "-", nil},
		{"vp8 stream, h264 viewer", pubVP8, offerSDP("video recvonly " + h264CB), "-", "-", ErrNoCodec},
		{"malformed", pubH264, "v=0\r\nbogus", "-", "-", ErrBadOffer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := NegotiateView([]byte(tt.offer), tt.pub)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if mime(o.Video) != tt.video || mime(o.Audio) != tt.audio {
				t.Errorf("chose %s + %s, want %s + %s", mime(o.Video), mime(o.Audio), tt.video, tt.audio)
			}
		})
	}
}
