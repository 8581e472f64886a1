package consul

import "strconv"

// The services reelfs daemons register as, and the Meta key under which a
// chunkserver puts its member id (the tracker matches Consul's checks to
// heartbeats by it). A chunkserver is also tagged GroupTag(group).
const (
	ServiceMeta  = "reelfs-meta"
	ServiceChunk = "reelfs-chunk"
	ServiceHTTPD = "reelfs-httpd"
	ServiceLive  = "reelfs-live"

	MetaMember = "member"
)

// GroupTag is the tag of a chunkserver of group g.
func GroupTag(g uint32) string { return "group-" + strconv.FormatUint(uint64(g), 10) }
