package sim

import (
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"time"
)

// WSSEDigest is the vendor's PasswordDigest: base64 of the lowercase hex of
// SHA1(nonce + created + secret). The hex text is encoded, not the raw hash.
func WSSEDigest(nonce, created, secret string) string {
	sum := sha1.Sum([]byte(nonce + created + secret))
	return base64.StdEncoding.EncodeToString([]byte(hex.EncodeToString(sum[:])))
}

// WSSEHeader builds an X-WSSE header value.
func WSSEHeader(user, nonce, created, secret string) string {
	return fmt.Sprintf(`UsernameToken Username="%s", PasswordDigest="%s", Nonce="%s", Created="%s"`,
		user, WSSEDigest(nonce, created, secret), nonce, created)
}

var wsseParam = regexp.MustCompile(`(\w+)="([^"]*)"`)

const (
	nonceTTL  = 10 * time.Minute
	clockSkew = 5 * time.Minute
)

// nonces remembers used nonces so a replayed header is refused.
type nonces struct {
	mu   sync.Mutex
	seen map[string]time.Time // nonce -> when it may be forgotten
}

// use records nonce and reports whether it was fresh.
func (n *nonces) use(nonce string, now time.Time) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.seen == nil {
		n.seen = map[string]time.Time{}
	}
	if len(n.seen) > 1024 {
		for k, exp := range n.seen {
			if now.After(exp) {
				delete(n.seen, k)
			}
		}
	}
	if exp, ok := n.seen[nonce]; ok && !now.After(exp) {
		return false
	}
	n.seen[nonce] = now.Add(nonceTTL)
	return true
}

// checkWSSE verifies an X-WSSE header; the error text is the reply text.
func checkWSSE(header, user, secret string, now time.Time, ns *nonces) error {
	if header == "" {
		return errors.New("Unauthorized: X-WSSE header is missing")
	}
	p := map[string]string{}
	for _, m := range wsseParam.FindAllStringSubmatch(header, -1) {
		p[m[1]] = m[2]
	}
	if p["Username"] == "" || p["PasswordDigest"] == "" || p["Nonce"] == "" || p["Created"] == "" {
		return errors.New("Unauthorized: X-WSSE header is malformed")
	}
	if p["Username"] != user {
		return errors.New("Unauthorized: unknown user")
	}
	created, err := parseCreated(p["Created"])
	if err != nil {
		return errors.New("Unauthorized: request time frame is invalid (Created is not an ISO 8601 time)")
	}
	if d := now.Sub(created); d > clockSkew || d < -clockSkew {
		return fmt.Errorf("Unauthorized: request time frame is invalid (Created is %s off the server clock)", d.Round(time.Second))
	}
	want := WSSEDigest(p["Nonce"], p["Created"], secret)
	if subtle.ConstantTimeCompare([]byte(want), []byte(p["PasswordDigest"])) != 1 {
		return errors.New("Unauthorized: invalid PasswordDigest")
	}
	// Only a valid request burns its nonce, so garbage cannot block a client.
	if !ns.use(p["Nonce"], now) {
		return errors.New("Unauthorized: nonce already used")
	}
	return nil
}

func parseCreated(s string) (time.Time, error) {
	for _, l := range []string{time.RFC3339Nano, "2006-01-02T15:04:05-0700", "2006-01-02T15:04:05Z0700"} {
		if t, err := time.Parse(l, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("created %q: not ISO 8601", s)
}
