// Package httpd is reelfs's public streaming server: players (ffplay, VLC,
// browsers) stream and seek stored files by URL, over fasthttp.
//
// # Routes
//
//	GET/HEAD /PATH               a file: 200, 206 (one or many ranges), 304,
//	                             412, 416; ?download adds Content-Disposition
//	GET/HEAD /DIR                301 to /DIR/
//	GET/HEAD /DIR/               listing: HTML, or JSON with ?format=json;
//	                             ?after=NAME pages on
//	GET/HEAD /player/PATH        an HTML5 <video>/<audio> page (id="player")
//	                             whose src is /PATH
//	PUT /PATH                    upload: 201 created, 204 replaced
//	DELETE /PATH                 204
//	OPTIONS *                    CORS preflight, 204
//	GET /-/health, /-/metrics    liveness (resolves "/") and Prometheus
//
// Paths starting with /-/ and /player/ are reserved: a stored file under
// /-/ cannot be fetched over HTTP, one under /player/ only through the
// player page (/player/player/...). Writes to both are refused.
//
// # Request paths
//
// The raw path of the request line is split on "/", each segment is
// percent-decoded exactly once, and the result must name a path inside the
// namespace: any ".." segment (also "%2e%2e", also behind a backslash), an
// encoded slash, a NUL, a bad escape or a leading "//" is a 400 with the
// reason. Empty and "." segments are dropped. The clean path is what a
// signature signs and what Resolve walks.
//
// # Access
//
// Reads are public unless Config.Secret is set with SignedReads: then
// every file, listing and player read needs ?e=EXPIRY&s=HEX where
// s = HMAC-SHA256(secret, PATH + "\n" + EXPIRY) over the clean path (see
// Sign, SignURL); 403 otherwise. Links a listing renders carry fresh
// signatures with the listing's own expiry. PUT and DELETE need
// "Authorization: Bearer SECRET" (401), and without a Secret they are
// refused (403) unless Config.AllowAnonymousWrites.
//
// # HTTP semantics
//
// The RFC 9110 logic is pure functions with table tests: parseRange
// (ranges, suffixes, open ends, coalescing; too many ranges or bad syntax
// is ignored and the whole file sent), checkPreconditions (§13.2.2 order:
// If-Match, If-Unmodified-Since, If-None-Match, If-Modified-Since) and
// ifRangeHolds. ETags are strong: "<ino hex>-<version hex>"; the version
// changes with every data change. Range applies to GET only (§14.2); HEAD
// gets the headers of a full GET.
//
// # The streaming read path
//
// A GET resolves the path, checks preconditions on the resolved attributes,
// opens the file (and re-checks if the open saw a newer version), then
// answers with a bodyStream. The stream's fetcher goroutine reads the
// response's segments (one range, or multipart headers and ranges) in
// PieceSize reads into a channel holding at most ReadAhead bytes, starting
// at the range start; the connection goroutine takes pieces as the client
// accepts them. So per response:
//
//   - memory is bounded by ReadAhead plus two pieces, however slow the
//     client;
//   - the first piece is awaited before the status is sent, so a file that
//     cannot be read fails with 5xx rather than a truncated 200;
//   - each piece handed over pushes the connection's write deadline
//     StallTimeout ahead, so a client that stops reading is cut off;
//   - when the write fails or completes, fasthttp closes the stream, which
//     cancels the fetcher, waits for it and closes the file: no goroutine
//     or open file outlives the response.
//
// # Uploads
//
// A PUT streams its body (fasthttp StreamRequestBody) in UploadPiece
// writes into a temporary file next to the target and renames it into
// place only when every byte arrived (Content-Length checked) and the file
// committed; any failure removes the temporary file. A missing parent is
// 409: PUT does not create directories.
//
// # Lifecycle
//
// New validates the Config and binds the listener. Run serves until its
// context ends or Close is called; it then stops accepting, lets responses
// finish for ShutdownTimeout, aborts the rest (cancelling fetchers and
// cutting their connections) and returns when every connection and fetcher
// has ended.
package httpd
