package client

import "github.com/reelfs/reelfs/internal/wire"

// The types the SDK's calls take and return, named here so that a program
// outside this module can spell them (internal/wire, where the protocol
// defines them, cannot be imported from outside).
type (
	// Attr is an inode's attributes: Mode holds POSIX type and permission
	// bits (FileMode converts them), times are Unix nanoseconds, and
	// Version changes with every change of the data.
	Attr = wire.Attr
	// DirEntry is a name in a directory with its attributes.
	DirEntry = wire.DirEntry
	// FSStats is the cluster's capacity and inode count (Client.StatFS).
	FSStats = wire.StatFS
	// Group is a group of chunkservers that hold the same blocks.
	Group = wire.Group
	// Member is one chunkserver of a group, as the tracker reports it.
	Member = wire.Member
)
