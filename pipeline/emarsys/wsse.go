package emarsys

import (
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"time"
)

// wsseTimeLayout is the Created format the API accepts: ISO 8601 with an
// explicit numeric zone, always UTC here.
const wsseTimeLayout = "2006-01-02T15:04:05+00:00"

// WSSEHeader returns the full X-WSSE header value. The digest is
// base64(lowercase-hex(SHA1(nonce+created+secret))): Emarsys encodes the hex
// string, not the raw 20-byte hash as textbook WSSE does.
func WSSEHeader(user, secret, nonce, created string) string {
	return fmt.Sprintf(`UsernameToken Username="%s", PasswordDigest="%s", Nonce="%s", Created="%s"`,
		user, wsseDigest(nonce, created, secret), nonce, created)
}

func wsseDigest(nonce, created, secret string) string {
	sum := sha1.Sum([]byte(nonce + created + secret))
	return base64.StdEncoding.EncodeToString([]byte(hex.EncodeToString(sum[:])))
}

// newNonce returns 16 random bytes as 32 lowercase hex characters. It is
// called once per request attempt: a nonce shared by two requests is
// rejected by the API.
func newNonce() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate WSSE nonce: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

func wsseCreated(t time.Time) string {
	return t.UTC().Format(wsseTimeLayout)
}
