// Package emarsys is the client of the Emarsys API calls the ETL needs:
// starting a responses export, waiting for it and downloading a local
// export. It speaks OAuth 2.0 (v3 paths) or WSSE (v2 paths).
package emarsys

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Defaults for the zero values of Config.
const (
	DefaultRequestTimeout   = 30 * time.Second
	DefaultMaxAttempts      = 5
	DefaultRetryBase        = 500 * time.Millisecond
	DefaultRetryMax         = 30 * time.Second
	DefaultRateLimitMaxWait = 90 * time.Second
)

// maxReplyBytes bounds how much of a reply is read: the JSON replies of
// these endpoints are small, and an error page needs only its start.
const maxReplyBytes = 1 << 20

// skewThreshold: a 401 is blamed on the clock when the API's Date header is
// further than this from ours (the API allows 5 minutes).
const skewThreshold = 4 * time.Minute

// Config configures New. Zero values get the defaults above.
type Config struct {
	BaseURL  string // e.g. https://api.emarsys.net/api/v3/ (OAuth) or .../api/v2/ (WSSE)
	Auth     string // AuthOAuth2 or AuthWSSE; default AuthWSSE
	TokenURL string // OAuth 2.0 token endpoint; required with AuthOAuth2
	User     string // WSSE user name or OAuth client id
	Secret   string // WSSE secret or OAuth client secret; never logged nor put in an error
	// Limiter paces requests by the API's rate-limit headers; share one
	// between all clients of the same account. Nil: a private one.
	Limiter    *Limiter
	HTTPClient *http.Client
	Now        func() time.Time // wall clock for WSSE Created; default time.Now
	Logger     *slog.Logger     // debug lines with endpoint and status only; nil = silent

	RequestTimeout   time.Duration // per attempt
	MaxAttempts      int           // per call, including the first
	RetryBase        time.Duration // first retry delay (grows x2, with jitter)
	RetryMax         time.Duration // retry delay cap
	RateLimitMaxWait time.Duration // longest wait for X-RateLimit-Reset
}

// Client calls the Emarsys API. It is safe for concurrent use.
type Client struct {
	base   *url.URL
	auth   string
	tokens *tokenSource
	limit  *Limiter
	user   string
	secret string
	hc     *http.Client
	now    func() time.Time
	log    *slog.Logger

	reqTimeout   time.Duration
	maxAttempts  int
	retryBase    time.Duration
	retryMax     time.Duration
	rateLimitMax time.Duration
}

// New checks cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	if cfg.BaseURL == "" {
		return nil, errors.New("emarsys: BaseURL is required (e.g. https://api.emarsys.net/api/v2/)")
	}
	base, err := url.Parse(cfg.BaseURL)
	if err != nil || base.Scheme == "" || base.Host == "" {
		return nil, fmt.Errorf("emarsys: BaseURL %q is not an absolute URL", cfg.BaseURL)
	}
	// Without the trailing slash, resolving "export/1" would drop the last
	// path element ("v2").
	if !strings.HasSuffix(base.Path, "/") {
		base.Path += "/"
	}
	if cfg.User == "" || cfg.Secret == "" {
		return nil, errors.New("emarsys: User and Secret are required")
	}
	if cfg.Auth == "" {
		cfg.Auth = AuthWSSE
	}
	if cfg.Auth != AuthWSSE && cfg.Auth != AuthOAuth2 {
		return nil, fmt.Errorf("emarsys: auth %q: use %s or %s", cfg.Auth, AuthOAuth2, AuthWSSE)
	}
	if cfg.Auth == AuthOAuth2 {
		if u, err := url.Parse(cfg.TokenURL); err != nil || u.Scheme == "" || u.Host == "" {
			return nil, fmt.Errorf("emarsys: OAuth 2.0 needs an absolute token URL, got %q", cfg.TokenURL)
		}
	}
	c := &Client{
		base:         base,
		auth:         cfg.Auth,
		limit:        cfg.Limiter,
		user:         cfg.User,
		secret:       cfg.Secret,
		hc:           cfg.HTTPClient,
		now:          cfg.Now,
		log:          cfg.Logger,
		reqTimeout:   cfg.RequestTimeout,
		maxAttempts:  cfg.MaxAttempts,
		retryBase:    cfg.RetryBase,
		retryMax:     cfg.RetryMax,
		rateLimitMax: cfg.RateLimitMaxWait,
	}
	if c.hc == nil {
		c.hc = &http.Client{}
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.reqTimeout <= 0 {
		c.reqTimeout = DefaultRequestTimeout
	}
	if c.maxAttempts <= 0 {
		c.maxAttempts = DefaultMaxAttempts
	}
	if c.retryBase <= 0 {
		c.retryBase = DefaultRetryBase
	}
	if c.retryMax <= 0 {
		c.retryMax = DefaultRetryMax
	}
	if c.rateLimitMax <= 0 {
		c.rateLimitMax = DefaultRateLimitMaxWait
	}
	if c.limit == nil {
		c.limit = NewLimiter(c.rateLimitMax)
	}
	if c.auth == AuthOAuth2 {
		c.tokens = &tokenSource{url: cfg.TokenURL}
	}
	return c, nil
}

// envelope is the wrapper of every JSON reply.
type envelope struct {
	ReplyCode flexInt64       `json:"replyCode"`
	ReplyText string          `json:"replyText"`
	Data      json.RawMessage `json:"data"`
}

// call sends one API request, retrying retryable errors with backoff, and
// returns the reply's data. redactAlso lists further secrets (the FTP
// password) to strip from reply text quoted in errors.
func (c *Client) call(ctx context.Context, method, endpoint string, body []byte, redactAlso ...string) (json.RawMessage, error) {
	secrets := append([]string{c.secret}, redactAlso...)
	var lastErr error
	reauthed := false
	for attempt := 1; ; attempt++ {
		data, hdr, gen, err := c.once(ctx, method, endpoint, body, secrets)
		if err == nil {
			return data, nil
		}
		lastErr = err
		if !reauthed && c.reauth(err, gen) {
			// An expired or revoked token: fetch a new one, once, at once.
			reauthed = true
			attempt--
			continue
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s %s: %w (last error: %w)", method, endpoint, ctx.Err(), lastErr)
		}
		if !IsRetryable(err) {
			return nil, err
		}
		if attempt >= c.maxAttempts {
			return nil, fmt.Errorf("%s %s: giving up after %d attempts: %w", method, endpoint, attempt, lastErr)
		}
		delay := c.backoff(attempt)
		var ae *APIError
		if errors.As(err, &ae) && ae.rateLimited() {
			if d, ok := c.rateLimitDelay(hdr); ok {
				delay = d
				// Everyone sharing the limiter waits too, not just this call.
				c.limit.block(d)
			}
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < delay {
			return nil, fmt.Errorf("%s %s: next attempt in %s would pass the deadline: %w", method, endpoint, delay.Round(time.Millisecond), lastErr)
		}
		c.log.Debug("emarsys: retrying", "endpoint", endpoint, "attempt", attempt, "delay", delay)
		if err := sleep(ctx, delay); err != nil {
			return nil, fmt.Errorf("%s %s: %w (last error: %w)", method, endpoint, err, lastErr)
		}
	}
}

// once sends a single attempt. It returns the reply headers so the caller
// can honour X-RateLimit-Reset.
// It also returns the generation of the OAuth token it carried.
func (c *Client) once(ctx context.Context, method, endpoint string, body []byte, secrets []string) (json.RawMessage, http.Header, int, error) {
	ctx, cancel := context.WithTimeout(ctx, c.reqTimeout)
	defer cancel()
	resp, gen, err := c.send(ctx, method, endpoint, nil, body, "application/json")
	if err != nil {
		return nil, nil, gen, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxReplyBytes))
	if err != nil {
		return nil, resp.Header, gen, fmt.Errorf("%s %s: read reply (HTTP %d): %w", method, endpoint, resp.StatusCode, err)
	}
	data, err := c.decode(endpoint, resp, raw, secrets)
	return data, resp.Header, gen, err
}

// send waits for the rate limiter, authenticates and sends one request; the
// caller reads and closes the body. gen is the OAuth token's generation.
func (c *Client) send(ctx context.Context, method, endpoint string, query url.Values, body []byte, accept string) (resp *http.Response, gen int, err error) {
	u := c.base.ResolveReference(&url.URL{Path: endpoint, RawQuery: query.Encode()})
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, 0, fmt.Errorf("build request %s %s: %w", method, endpoint, err)
	}
	if gen, err = c.authorize(ctx, req); err != nil {
		return nil, gen, err
	}
	req.Header.Set("Accept", accept)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if err := c.limit.wait(ctx); err != nil {
		return nil, gen, fmt.Errorf("%s %s: waiting for the rate limit to reset: %w", method, endpoint, err)
	}
	resp, err = c.hc.Do(req)
	if err != nil {
		c.log.Debug("emarsys: request failed", "endpoint", endpoint)
		return nil, gen, fmt.Errorf("%s %s: %w", method, endpoint, err)
	}
	c.log.Debug("emarsys: reply", "endpoint", endpoint, "status", resp.StatusCode)
	c.limit.observe(resp.Header, c.now)
	return resp, gen, nil
}

// authorize adds the X-WSSE or the bearer token header, and returns the
// token's generation (0 with WSSE).
func (c *Client) authorize(ctx context.Context, req *http.Request) (int, error) {
	if c.auth == AuthOAuth2 {
		tok, gen, err := c.tokens.get(ctx, c)
		if err != nil {
			return 0, err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		return gen, nil
	}
	// A fresh nonce and Created for every attempt: a retried request must not
	// reuse either.
	nonce, err := newNonce()
	if err != nil {
		return 0, err
	}
	req.Header.Set("X-WSSE", WSSEHeader(c.user, c.secret, nonce, wsseCreated(c.now())))
	return 0, nil
}

// decode turns a reply into its data or an *APIError.
func (c *Client) decode(endpoint string, resp *http.Response, raw []byte, secrets []string) (json.RawMessage, error) {
	ae := &APIError{HTTPStatus: resp.StatusCode, Endpoint: endpoint}
	trimmed := bytes.TrimSpace(bytes.TrimPrefix(raw, []byte("\xef\xbb\xbf")))
	var env envelope
	isJSON := len(trimmed) > 0 && trimmed[0] == '{' && json.Unmarshal(trimmed, &env) == nil
	if resp.StatusCode == http.StatusUnauthorized && c.auth == AuthWSSE {
		ae.ClockSkew = c.skew(resp.Header.Get("Date"))
	}
	if !isJSON {
		// 5xx pages are HTML: report the status and the page's start, never a
		// JSON parse error.
		// Redact before cutting, so a secret split by the cut cannot leak
		// its first half.
		ae.BodyPrefix = cleanPrefix([]byte(redact(string(trimmed), secrets)), 200)
		if ae.BodyPrefix == "" {
			ae.BodyPrefix = "(empty body)"
		}
		return nil, ae
	}
	ae.ReplyCode = int(env.ReplyCode)
	ae.ReplyText = cleanPrefix([]byte(redact(env.ReplyText, secrets)), 500)
	if resp.StatusCode >= 300 || env.ReplyCode != 0 {
		return nil, ae
	}
	return env.Data, nil
}

// skew returns local minus API time if the Date header shows the clocks too
// far apart for WSSE, else 0.
func (c *Client) skew(date string) time.Duration {
	if date == "" {
		return 0
	}
	server, err := http.ParseTime(date)
	if err != nil {
		return 0
	}
	d := c.now().Sub(server)
	if d.Abs() <= skewThreshold {
		return 0
	}
	return d
}

// rateLimitDelay reads X-RateLimit-Reset (Unix seconds; a small value is
// taken as seconds from now, a huge one as milliseconds).
func (c *Client) rateLimitDelay(h http.Header) (time.Duration, bool) {
	v := strings.TrimSpace(h.Get("X-RateLimit-Reset")) // Get is case-insensitive
	if v == "" {
		return 0, false
	}
	n, err := strconv.ParseFloat(v, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	var d time.Duration
	switch {
	case n > 1e12:
		d = time.UnixMilli(int64(n)).Sub(c.now())
	case n > 1e9:
		d = time.Unix(int64(n), 0).Sub(c.now())
	default:
		d = time.Duration(n * float64(time.Second))
	}
	// Jitter, so that parallel callers do not all fire at the same instant.
	d += time.Duration(rand.Int64N(int64(250 * time.Millisecond)))
	if d <= 0 {
		return 0, false
	}
	return min(d, c.rateLimitMax), true
}

// backoff is exponential with jitter in [d/2, d].
func (c *Client) backoff(attempt int) time.Duration {
	return jitter(expDelay(c.retryBase, c.retryMax, attempt-1))
}

func expDelay(base, maxDelay time.Duration, n int) time.Duration {
	d := base
	for i := 0; i < n && d < maxDelay; i++ {
		d *= 2
	}
	return min(d, maxDelay)
}

func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	half := d / 2
	return half + time.Duration(rand.Int64N(int64(d-half)+1))
}

// sleep waits for d or until ctx ends (a nil wake channel never fires).
func sleep(ctx context.Context, d time.Duration) error { return sleepOrWake(ctx, d, nil) }

// flexInt64 decodes a JSON number or a string holding one: the API returns
// ids as either.
type flexInt64 int64

func (f *flexInt64) UnmarshalJSON(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "null" {
		return nil
	}
	s = strings.Trim(s, `"`)
	if s == "" {
		return nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("not an integer: %.40s", string(b))
	}
	*f = flexInt64(n)
	return nil
}

// flexString decodes a string, a number or null into text.
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*f = ""
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*f = flexString(s)
		return nil
	}
	*f = flexString(strings.TrimSpace(string(b)))
	return nil
}
