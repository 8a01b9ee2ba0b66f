package emarsys

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Authentication modes.
const (
	AuthOAuth2 = "oauth2" // client credentials, bearer token, v3 paths
	AuthWSSE   = "wsse"   // X-WSSE header, v2 paths; the vendor retires it end of 2026
)

// DefaultTokenURL is the vendor's OAuth 2.0 token endpoint.
const DefaultTokenURL = "https://auth.emarsys.net/oauth2/token"

// tokenEarly: a token is replaced this long before it expires, so a request
// never leaves with a token that dies on the way.
const tokenEarly = 60 * time.Second

// tokenSource caches one access token per client.
type tokenSource struct {
	url string

	mu      sync.Mutex
	token   string
	expires time.Time
	fetches int
}

// get returns a cached token or fetches a new one. Concurrent callers wait
// for one fetch rather than each fetching.
func (t *tokenSource) get(ctx context.Context, c *Client) (string, int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.token != "" && c.now().Before(t.expires) {
		return t.token, t.fetches, nil
	}
	var lastErr error
	for attempt := 1; attempt <= c.maxAttempts; attempt++ {
		tok, ttl, err := t.fetch(ctx, c)
		if err == nil {
			t.fetches++
			t.token = tok
			// Half the life for very short tokens, else a minute early.
			early := min(tokenEarly, ttl/2)
			t.expires = c.now().Add(ttl - early)
			return tok, t.fetches, nil
		}
		lastErr = err
		if !IsRetryable(err) || attempt == c.maxAttempts {
			break
		}
		if err := sleep(ctx, c.backoff(attempt)); err != nil {
			return "", 0, fmt.Errorf("%w (last error: %w)", err, lastErr)
		}
	}
	return "", 0, lastErr
}

func (t *tokenSource) fetch(ctx context.Context, c *Client) (string, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, c.reqTimeout)
	defer cancel()
	form := url.Values{"grant_type": {"client_credentials"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, strings.NewReader(form.Encode()))
	if err != nil {
		return "", 0, fmt.Errorf("OAuth token request: %w", err)
	}
	req.SetBasicAuth(c.user, c.secret)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return "", 0, fmt.Errorf("OAuth token from %s: %w", t.url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxReplyBytes))
	if err != nil {
		return "", 0, fmt.Errorf("OAuth token from %s: read reply (HTTP %d): %w", t.url, resp.StatusCode, err)
	}
	var body struct {
		AccessToken string  `json:"access_token"`
		ExpiresIn   float64 `json:"expires_in"`
		Error       string  `json:"error"`
	}
	jsonErr := json.Unmarshal(raw, &body)
	if resp.StatusCode != http.StatusOK || jsonErr != nil || body.AccessToken == "" {
		ae := &APIError{HTTPStatus: resp.StatusCode, Endpoint: "oauth2/token"}
		switch {
		case body.Error != "":
			ae.ReplyText = cleanPrefix([]byte(redact(body.Error, []string{c.secret})), 200)
		default:
			ae.BodyPrefix = cleanPrefix([]byte(redact(string(raw), []string{c.secret})), 200)
		}
		if resp.StatusCode == http.StatusOK {
			// 200 without a token is a broken reply, not a bad password.
			ae.HTTPStatus = http.StatusBadGateway
		}
		if resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusUnauthorized {
			return "", 0, fmt.Errorf("%w (check emarsys.user = OAuth client id and emarsys.secret = client secret, and that the credential is active)", ae)
		}
		return "", 0, ae
	}
	ttl := time.Duration(body.ExpiresIn * float64(time.Second))
	if ttl <= 0 {
		ttl = 5 * time.Minute // no expires_in: assume short, the 401 path covers the rest
	}
	return body.AccessToken, ttl, nil
}

// reauth reports whether err is a 401 that a new OAuth token may fix, and
// drops the cached token if it is still the one the request carried (gen):
// not one a parallel call has just fetched.
func (c *Client) reauth(err error, gen int) bool {
	if c.auth != AuthOAuth2 {
		return false
	}
	var ae *APIError
	if !errors.As(err, &ae) || ae.HTTPStatus != http.StatusUnauthorized || ae.Endpoint == "oauth2/token" {
		return false
	}
	c.tokens.mu.Lock()
	if c.tokens.fetches == gen {
		c.tokens.token = ""
	}
	c.tokens.mu.Unlock()
	return true
}

// TokenFetches is how many OAuth tokens this client has fetched (for tests
// and metrics; 0 with WSSE).
func (c *Client) TokenFetches() int {
	if c.tokens == nil {
		return 0
	}
	c.tokens.mu.Lock()
	defer c.tokens.mu.Unlock()
	return c.tokens.fetches
}
