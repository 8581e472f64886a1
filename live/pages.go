package live

import (
	"encoding/json"
	"html/template"
	"net/http"
	"sort"
	"strings"
	"time"
)

// StreamInfo describes a live stream (GET /api/streams).
type StreamInfo struct {
	Name      string    `json:"name"`
	Codecs    string    `json:"codecs"`
	Started   time.Time `json:"started"`
	Viewers   int       `json:"viewers"`
	Recording string    `json:"recording,omitempty"` // path in the filesystem
	Playlist  string    `json:"playlist,omitempty"`
	PlayURL   string    `json:"play_url,omitempty"` // httpd player page of the recording
	HLSURL    string    `json:"hls_url,omitempty"`
}

// Streams lists the live streams by name.
func (s *Server) Streams() []StreamInfo {
	s.mu.Lock()
	sts := make([]*stream, 0, len(s.streams))
	for _, st := range s.streams {
		sts = append(sts, st)
	}
	s.mu.Unlock()
	out := make([]StreamInfo, 0, len(sts))
	for _, st := range sts {
		n := 0
		for _, v := range *st.viewers.Load() {
			if v.live.Load() {
				n++
			}
		}
		in := StreamInfo{Name: st.name, Codecs: st.offer.String(), Started: st.started, Viewers: n}
		if st.rec != nil {
			in.Recording = st.rec.path()
			in.Playlist = strings.TrimSuffix(in.Recording, ".mp4") + ".m3u8"
			if base := strings.TrimRight(s.cfg.HTTPBase, "/"); base != "" {
				in.PlayURL = base + "/player" + in.Recording
				in.HLSURL = base + in.Playlist
			}
		}
		out = append(out, in)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (s *Server) handleStreams(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(s.Streams())
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = listPage.Execute(w, s.Streams())
}

// handlePage serves the watch page (WHEP) or, with ?publish, the publish
// page (WHIP) of one stream. A token for a server with a secret is taken
// from ?token= by the page's script.
func (s *Server) handlePage(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("stream")
	if !streamName.MatchString(name) {
		http.Error(w, "bad stream name", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, publish := r.URL.Query()["publish"]
	_ = streamPage.Execute(w, map[string]any{"Name": name, "Publish": publish})
}

var listPage = template.Must(template.New("list").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>reelfs live</title>
<style>body{font-family:sans-serif;margin:2em}td,th{padding:.3em 1em;text-align:left}</style></head>
<body><h1>Live streams</h1>
{{if .}}<table><tr><th>stream</th><th>codecs</th><th>viewers</th><th>since</th><th>recording</th></tr>
{{range .}}<tr><td><a href="/live/{{.Name}}">{{.Name}}</a></td><td>{{.Codecs}}</td><td>{{.Viewers}}</td>
<td>{{.Started.Format "15:04:05 MST"}}</td>
<td>{{if .PlayURL}}<a href="{{.PlayURL}}">mp4</a> <a href="{{.HLSURL}}">hls</a>{{else}}{{.Recording}}{{end}}</td></tr>
{{end}}</table>{{else}}<p>No stream is live. Publish one at <code>/live/NAME?publish</code> or with any WHIP client to <code>/whip/NAME</code>.</p>{{end}}
</body></html>`))

var streamPage = template.Must(template.New("stream").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>{{.Name}} - reelfs live</title>
<style>body{font-family:sans-serif;margin:2em}video{width:640px;max-width:100%;background:#000}#stats{font-family:monospace}</style></head>
<body><h1>{{if .Publish}}Publishing{{else}}Watching{{end}} <a href="/live/{{.Name}}">{{.Name}}</a></h1>
<video id="video" autoplay muted playsinline controls></video>
<p id="status">connecting…</p>
<p id="stats"></p>
<p id="recording"></p>
<p><a href="/live/">all streams</a></p>
<script>
const stream = {{.Name}};
const publish = {{.Publish}};
const params = new URLSearchParams(location.search);
const token = params.get("token");
const video = document.getElementById("video");
const status = (s) => document.getElementById("status").textContent = s;
let pc = null, resource = null, watching = null;

function headers() {
  const h = {"Content-Type": "application/sdp"};
  if (token) h["Authorization"] = "Bearer " + token;
  return h;
}

// Non-trickle: the offer is sent once every candidate is in it.
function gathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    pc.addEventListener("icegatheringstatechange", () => { if (pc.iceGatheringState === "complete") resolve(); });
    setTimeout(resolve, 3000);
  });
}

async function negotiate(endpoint) {
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  const r = await fetch(endpoint, {method: "POST", headers: headers(), body: pc.localDescription.sdp});
  if (r.status !== 201) throw new Error(r.status + " " + (await r.text()));
  resource = r.headers.get("Location");
  await pc.setRemoteDescription({type: "answer", sdp: await r.text()});
}

function retryLater() {
  if (pc) pc.close();
  pc = null;
  setTimeout(start, 2000);
}

async function start() {
  pc = new RTCPeerConnection();
  pc.addEventListener("connectionstatechange", () => {
    status(pc.connectionState);
    if (pc.connectionState === "failed" || pc.connectionState === "closed") retryLater();
  });
  try {
    if (publish) {
      const media = await navigator.mediaDevices.getUserMedia({video: {width: 640, height: 360}, audio: true});
      video.srcObject = media;
      for (const t of media.getTracks()) {
        const tr = pc.addTransceiver(t, {direction: "sendonly"});
        if (t.kind === "video" && RTCRtpSender.getCapabilities) {
          // H.264 first (the recording and most players take it); the
          // server picks it whenever it is offered, so ?codec=vp8 offers
          // VP8 only.
          let codecs = RTCRtpSender.getCapabilities("video").codecs;
          const media = ["video/H264", "video/VP8", "video/VP9", "video/AV1"];
          if ((params.get("codec") || "").toLowerCase() === "vp8") {
            codecs = codecs.filter((c) => c.mimeType === "video/VP8" || !media.includes(c.mimeType));
          }
          const rank = (c) => c.mimeType === "video/H264" ? 0 : c.mimeType === "video/VP8" ? 1 : 2;
          codecs.sort((a, b) => rank(a) - rank(b));
          if (tr.setCodecPreferences) tr.setCodecPreferences(codecs);
        }
      }
      await negotiate("/whip/" + encodeURIComponent(stream));
    } else {
      pc.addTransceiver("video", {direction: "recvonly"});
      pc.addTransceiver("audio", {direction: "recvonly"});
      const ms = new MediaStream();
      video.srcObject = ms;
      pc.addEventListener("track", (e) => { ms.addTrack(e.track); video.play().catch(() => {}); });
      await negotiate("/whep/" + encodeURIComponent(stream));
    }
  } catch (e) {
    status("not connected: " + e.message + " (retrying)");
    retryLater();
  }
}

// Viewers and an estimate of the delay: the receiver's jitter buffer
// plus half the round trip to the server.
async function stats() {
  try {
    const r = await fetch("/api/streams");
    const all = await r.json();
    const me = all.find((s) => s.name === stream);
    let line = me ? "viewers: " + me.viewers : "stream is not live";
    // A viewer of a stream that ended (or was replaced by a new one of
    // the same name) reconnects at once instead of waiting for the
    // browser to time the old connection out.
    if (!publish && pc && pc.connectionState === "connected" && (!me || (watching && me.started !== watching))) {
      watching = null;
      retryLater();
    } else if (!publish && pc && pc.connectionState === "connected" && me) {
      watching = me.started;
    }
    if (me && me.play_url) {
      document.getElementById("recording").innerHTML = 'recording: <a href="' + me.play_url + '">' + me.recording + '</a> · <a href="' + me.hls_url + '">HLS</a>';
    } else if (me && me.recording) {
      document.getElementById("recording").textContent = "recording: " + me.recording;
    }
    if (pc && !publish) {
      let jb = 0, rtt = 0, frames = 0;
      (await pc.getStats()).forEach((s) => {
        if (s.type === "inbound-rtp" && s.kind === "video" && s.jitterBufferEmittedCount) {
          jb = s.jitterBufferDelay / s.jitterBufferEmittedCount; frames = s.framesDecoded;
        }
        if (s.type === "candidate-pair" && s.nominated && s.currentRoundTripTime !== undefined) rtt = s.currentRoundTripTime;
      });
      line += " · latency ≈ " + Math.round((jb + rtt / 2) * 1000) + " ms · frames " + frames;
    }
    document.getElementById("stats").textContent = line;
  } catch (e) {}
}
setInterval(stats, 1000);
window.addEventListener("pagehide", () => { if (resource) fetch(resource, {method: "DELETE", headers: headers(), keepalive: true}); });
start();
</script>
</body></html>`))
