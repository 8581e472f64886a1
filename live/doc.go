// Package live is the WebRTC SFU of reelfs: publishers send a stream with
// WHIP (RFC 9725), viewers watch it with WHEP, and every stream is
// recorded into the filesystem through the client SDK while it is live.
//
// # Sessions
//
// A POST of an SDP offer to /whip/{stream} or /whep/{stream} creates a
// session. Before any WebRTC state exists the request passes, cheapest
// first: the bearer token (401), the stream name (400), the per-client
// token bucket of session creations (429), the content type (415), the
// body size (413), and codec negotiation on the parsed offer (400 for an
// offer that does not parse, 422 for one with no usable codec, 404 for a
// viewer of a stream nobody publishes, 409 for a second publisher of a
// live name, 503 past MaxSessions). Only then is a peer connection made;
// the answer carries every server candidate (one host address on the one
// UDP port that pion's ICE UDP mux shares among all sessions), so the
// server does not take trickle ICE (PATCH answers 405). The 201 carries
// the answer and a Location; DELETE on it ends the session.
//
// # A stream's states
//
//	starting --connected--> live --DELETE / peer failed / shutdown--> ended
//	    \--------------- no connection in ConnectTimeout -----------/
//
// A stream holds its name from the WHIP answer until it ends; viewers may
// join as soon as the answer is out and get packets once their own
// connection is up. While live, one goroutine per published track reads
// RTP and, without decoding, puts each packet into the track's packet
// cache, into every connected viewer's queue, and into the recorder's
// queue. When a stream ends its viewers' connections are closed (they see
// the connection go), the recording gets its last fragment and the
// ENDLIST of its playlist, and the name is free: a publisher that comes
// back starts a new stream and a new recording, and viewers that reconnect
// resume.
//
// # A viewer's states
//
//	joining --connected--> watching --DELETE / failed / slow / stream ended--> gone
//
// On connecting, the publisher is asked for a keyframe (PLI, at most one
// per KeyframeInterval per publisher; requests in between are coalesced,
// not dropped). A viewer has its own goroutine that writes its queue to
// its tracks (SRTP and the socket write happen there), so a viewer whose
// queue fills up (ViewerQueue packets behind) is dropped without holding
// back the reader or the others. Its RTCP is read by one goroutine per
// track: NACKs are answered from the shared packet cache (forwarded
// packets keep the publisher's sequence numbers, so one cache serves all
// viewers), PLI and FIR go to the publisher, receiver reports and REMB
// estimates go to the metrics. Towards the publisher, pion's interceptors
// generate NACKs, receiver reports and transport-wide congestion control
// feedback (so a browser adapts its sending rate).
//
// # Recording
//
// The recorder of a stream runs on its own goroutine: it rebuilds frames
// from RTP (pion's sample builder), starts at the first video keyframe,
// maps RTP timestamps to track time, cuts fragments of about
// FragmentTarget at keyframes (FragmentMax without one, and it asks for a
// keyframe when none came for RecordKeyframeEvery), encodes
// them with mp4ff and appends each to RECORDDIR/{stream}/{start}.mp4 with
// a Flush, which uploads and commits it: a fragment is visible to every
// reader (httpd, the mount) within a round trip of its last packet, and
// no uploaded block ever waits uncommitted for the collector. The HLS
// playlist {start}.m3u8 is an EVENT playlist of byte ranges of that same
// file, appended and committed after each fragment.
//
// Tracks are aligned once, at their first recorded frame, by the arrival
// of that frame's first packet (a frame leaves the sample builder only
// when the next begins, and a keyframe is paced out over many packets);
// from there each track's own RTP clock places its frames. RTCP sender
// reports would align publishers whose audio and video take different
// network paths; they are not used yet.
//
// # Playback
//
// POST /whep/vod/{path}?t=SECONDS plays a stored MP4 or fragmented MP4 to a
// WHEP viewer: the file's samples are indexed from its sample tables or
// its moofs without reading media data (vod.go, a pure function over the
// parsed boxes), the viewer's offer is negotiated against the file's
// codecs like against a live stream's, and once connected one goroutine
// reads each sample from the filesystem and sends it at its time, from
// the video keyframe at or before t. At the end of the file the session
// ends and the viewer sees its connection close.
//
// # Goroutines
//
// Run owns every goroutine the package starts (track readers, viewer
// writers and RTCP readers, stream tickers, recorders, the closers of peer
// connections): they are started through Server.goFunc and Run returns
// after all of them have stopped. A refused request starts none.
package live
