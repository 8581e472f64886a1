package httpd

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"
)

// Signed URLs. A protected read carries two query parameters:
//
//	e = expiry, Unix seconds, decimal
//	s = hex(HMAC-SHA256(secret, PATH + "\n" + e))
//
// PATH is the decoded clean path: "/movies/a b.mp4", never percent-encoded,
// no trailing slash ("/" for the root). The signature covers the path only,
// so one signed URL also opens the file's player page (/player/PATH) and
// its ?download form, and a directory's signature opens its listing pages.

// Sign returns the query string "e=EXPIRY&s=SIGNATURE" that lets a reader
// fetch path until expires. path is the decoded absolute path; it is
// cleaned the way the server cleans request paths.
func Sign(secret, path string, expires time.Time) string {
	e := strconv.FormatInt(expires.Unix(), 10)
	return "e=" + e + "&s=" + signature(secret, canonical(path), e)
}

// SignURL returns base + the percent-encoded path + "?" + Sign(...), valid
// for ttl from now. base is "http://host:port" (a trailing slash is
// dropped); a path ending in "/" keeps the slash so a directory URL lists.
func SignURL(base, secret, path string, ttl time.Duration, now time.Time) string {
	p := canonical(path)
	u := strings.TrimRight(base, "/") + escapePath(p)
	if p != "/" && strings.HasSuffix(path, "/") {
		u += "/"
	}
	return u + "?" + Sign(secret, p, now.Add(ttl))
}

// canonical is the clean absolute form of a decoded path, as cleanPath
// produces it.
func canonical(p string) string {
	return path.Clean("/" + p)
}

func signature(secret, path, expiry string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(path))
	mac.Write([]byte{'\n'})
	mac.Write([]byte(expiry))
	return hex.EncodeToString(mac.Sum(nil))
}

// verifySignature checks the e and s parameters of a read of clean path p.
func verifySignature(secret, p, e, s string, now time.Time) error {
	if e == "" || s == "" {
		return fmt.Errorf("%w: signed URL required (e and s parameters)", ErrSignature)
	}
	exp, err := strconv.ParseInt(e, 10, 64)
	if err != nil || exp < 0 {
		return fmt.Errorf("%w: malformed expiry", ErrSignature)
	}
	got, err := hex.DecodeString(s)
	if err != nil || len(got) != sha256.Size {
		return fmt.Errorf("%w: malformed signature", ErrSignature)
	}
	want, _ := hex.DecodeString(signature(secret, p, e))
	if !hmac.Equal(got, want) {
		return fmt.Errorf("%w: signature does not match", ErrSignature)
	}
	if now.Unix() > exp {
		return fmt.Errorf("%w: signed URL expired", ErrSignature)
	}
	return nil
}
