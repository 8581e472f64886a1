package httpd

import (
	"strings"
)

// contentType maps a file name's extension (without case) to a media type.
// It is a fixed table on purpose: mime.TypeByExtension reads the system's
// mime.types, so the same file would get different types on different hosts.
func contentType(name string) string {
	dot := strings.LastIndexByte(name, '.')
	if dot < 0 || strings.IndexByte(name[dot:], '/') >= 0 {
		return "application/octet-stream"
	}
	switch strings.ToLower(name[dot+1:]) {
	case "mp4":
		return "video/mp4"
	case "m4v":
		return "video/x-m4v"
	case "m4a":
		return "audio/mp4"
	case "mov":
		return "video/quicktime"
	case "mkv":
		return "video/x-matroska"
	case "webm":
		return "video/webm"
	case "ts":
		return "video/mp2t"
	case "m3u8":
		return "application/vnd.apple.mpegurl"
	case "mpd":
		return "application/dash+xml"
	case "mp3":
		return "audio/mpeg"
	case "aac":
		return "audio/aac"
	case "flac":
		return "audio/flac"
	case "ogg":
		return "audio/ogg"
	case "opus":
		return "audio/ogg"
	case "wav":
		return "audio/wav"
	case "jpg", "jpeg":
		return "image/jpeg"
	case "png":
		return "image/png"
	case "webp":
		return "image/webp"
	case "vtt":
		return "text/vtt; charset=utf-8"
	case "srt":
		return "application/x-subrip"
	}
	return "application/octet-stream"
}

// playable reports whether a media type gets a player page: audio, video
// and HLS/DASH manifests.
func playable(ctype string) bool {
	return strings.HasPrefix(ctype, "video/") || strings.HasPrefix(ctype, "audio/") ||
		ctype == "application/vnd.apple.mpegurl" || ctype == "application/dash+xml"
}
