package emarsys

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// oauthServer issues tokens at /oauth2/token and checks them on v3 paths.
type oauthServer struct {
	mu      sync.Mutex
	valid   map[string]bool
	issued  atomic.Int32
	wsseHdr atomic.Int32
	n       int
}

func (o *oauthServer) handler(t *testing.T, api http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-WSSE") != "" {
			o.wsseHdr.Add(1)
		}
		if r.URL.Path == "/oauth2/token" {
			id, sec, _ := r.BasicAuth()
			if r.PostFormValue("grant_type") != "client_credentials" || id != testUser || sec != testSecret {
				w.WriteHeader(401)
				io.WriteString(w, `{"error":"invalid_client"}`)
				return
			}
			o.mu.Lock()
			o.n++
			tok := "tok" + strconv.Itoa(o.n)
			o.valid[tok] = true
			o.mu.Unlock()
			o.issued.Add(1)
			json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "bearer", "expires_in": 3600})
			return
		}
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		o.mu.Lock()
		ok := o.valid[tok]
		o.mu.Unlock()
		if !ok {
			reply(w, 401, 1, "Unauthorized", nil)
			return
		}
		api(w, r)
	}
}

func (o *oauthServer) revokeAll() {
	o.mu.Lock()
	clear(o.valid)
	o.mu.Unlock()
}

func oauthClient(t *testing.T, o *oauthServer, api http.HandlerFunc, secret string) *Client {
	c, _ := newTestClient(t, o.handler(t, api), func(c *Config) {
		c.Auth = AuthOAuth2
		c.BaseURL = strings.Replace(c.BaseURL, "/api/v2", "/api/v3", 1)
		c.TokenURL = strings.TrimSuffix(strings.Split(c.BaseURL, "/api/")[0], "/") + "/oauth2/token"
		c.Secret = secret
	})
	return c
}

func TestOAuthCachesAndRefreshesOnce(t *testing.T) {
	o := &oauthServer{valid: map[string]bool{}}
	var apiCalls atomic.Int32
	c := oauthClient(t, o, func(w http.ResponseWriter, r *http.Request) {
		apiCalls.Add(1)
		reply(w, 200, 0, "OK", map[string]any{"id": 3, "status": "done"})
	}, testSecret)
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.ExportStatus(ctx, 3); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if o.issued.Load() != 1 {
		t.Fatalf("%d tokens for 8 parallel calls, want 1 (cached)", o.issued.Load())
	}
	o.revokeAll() // the token expires on the server's side
	if _, err := c.ExportStatus(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if o.issued.Load() != 2 || c.TokenFetches() != 2 {
		t.Fatalf("%d tokens after a 401, want 2", o.issued.Load())
	}
	if o.wsseHdr.Load() != 0 {
		t.Fatal("an OAuth client sent X-WSSE")
	}

	// A 401 the new token does not fix is reported, not looped on.
	c2 := oauthClient(t, o, func(w http.ResponseWriter, r *http.Request) { reply(w, 401, 1, "Unauthorized", nil) }, testSecret)
	before := o.issued.Load()
	_, err := c2.ExportStatus(ctx, 3)
	if err == nil || o.issued.Load()-before != 2 {
		t.Fatalf("err %v, tokens fetched %d; want an error after exactly one refresh", err, o.issued.Load()-before)
	}
}

func TestOAuthBadCredentials(t *testing.T) {
	o := &oauthServer{valid: map[string]bool{}}
	c := oauthClient(t, o, func(w http.ResponseWriter, r *http.Request) {}, "wrong-Secret-Value")
	_, err := c.ExportStatus(context.Background(), 3)
	if err == nil || !strings.Contains(err.Error(), "client id") || !strings.Contains(err.Error(), "invalid_client") {
		t.Fatalf("err = %v; want the token refusal with a hint at client id and secret", err)
	}
	if strings.Contains(err.Error(), "wrong-Secret-Value") {
		t.Fatal("the client secret is in the error")
	}
	var ae *APIError
	if !errors.As(err, &ae) || ae.HTTPStatus != 401 || IsRetryable(err) {
		t.Fatalf("err %v: want a non-retryable 401", err)
	}
}

func TestDownloadErrorsAndPaging(t *testing.T) {
	// 4 records, one holding a quoted line break; pages of 2.
	records := []string{"u;a\r\n", "1;\"x\r\ny\"\r\n", "2;b\r\n", "3;c\r\n", "4;d\r\n"}
	var pages []string
	c, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		off, _ := strconv.Atoi(r.URL.Query().Get("offset"))
		lim, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		pages = append(pages, r.URL.Query().Get("offset"))
		if strings.HasSuffix(r.URL.Path, "/7/data") {
			reply(w, 410, 4003, "File no longer stored", nil)
			return
		}
		if len(pages) == 1 {
			reply(w, 404, 4005, "Export is still in progress", nil)
			return
		}
		w.Header().Set("Content-Type", "text/csv;charset=UTF-8")
		var b strings.Builder
		if off == 0 {
			b.WriteString(records[0])
		}
		for i := off + 1; i <= off+lim && i < len(records); i++ {
			b.WriteString(records[i])
		}
		io.WriteString(w, b.String())
	})
	got, err := io.ReadAll(c.OpenData(context.Background(), 5, 2, true))
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Join(records, ""); string(got) != want {
		t.Fatalf("file = %q\nwant   %q", got, want)
	}
	// 4005 first (waited and retried), then offsets 0, 2, 4 (a short page ends it).
	if strings.Join(pages, ",") != "0,0,2,4" {
		t.Fatalf("pages asked: %v", pages)
	}
	_, err = io.ReadAll(c.OpenData(context.Background(), 7, 2, true))
	if !errors.Is(err, ErrExportGone) || !strings.Contains(err.Error(), "requested again") {
		t.Fatalf("err = %v; want ErrExportGone saying to request the export again", err)
	}
}

func TestLimiterPacesByHeaders(t *testing.T) {
	l := NewLimiter(time.Minute)
	now := time.Now
	h := http.Header{}
	h.Set("x-ratelimit-remaining", "0")
	h.Set("X-RATELIMIT-RESET", "0.05") // seconds from now
	l.observe(h, now)
	if err := l.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if l.Waits() != 1 {
		t.Fatalf("waits = %d, want 1 (budget spent)", l.Waits())
	}
	// Missing headers leave it open.
	l.observe(http.Header{}, now)
	if err := l.wait(context.Background()); err != nil || l.Waits() != 1 {
		t.Fatalf("err %v waits %d: missing headers must not block", err, l.Waits())
	}
	// A context that ends first ends the wait.
	h.Set("X-RateLimit-Reset", "30")
	l.observe(h, now)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

// The token endpoint answering an HTML error page (500, or 200 from a proxy)
// is retried like any 5xx; a page that persists is reported with its first
// bytes as a retryable error, never taken for refused credentials.
func TestOAuthTokenEndpointHTML(t *testing.T) {
	for _, c := range []struct {
		name       string
		status     int
		bad        int32 // token requests answered with the page
		wantErr    bool
		wantStatus int
	}{
		{"500 then a token", 500, 2, false, 0},
		{"500 throughout", 500, 100, true, 500},
		{"200 HTML throughout", 200, 100, true, 502},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := &oauthServer{valid: map[string]bool{}}
			var tokenCalls atomic.Int32
			inner := o.handler(t, func(w http.ResponseWriter, r *http.Request) {
				reply(w, 200, 0, "OK", map[string]any{"id": 3, "status": "done"})
			})
			cl, _ := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/oauth2/token" && tokenCalls.Add(1) <= c.bad {
					w.Header().Set("Content-Type", "text/html")
					w.WriteHeader(c.status)
					io.WriteString(w, "<html><body>Bad gateway</body></html>")
					return
				}
				inner(w, r)
			}, func(cfg *Config) {
				cfg.Auth = AuthOAuth2
				cfg.BaseURL = strings.Replace(cfg.BaseURL, "/api/v2", "/api/v3", 1)
				cfg.TokenURL = strings.Split(cfg.BaseURL, "/api/")[0] + "/oauth2/token"
			})
			_, err := cl.ExportStatus(context.Background(), 3)
			if !c.wantErr {
				if err != nil || tokenCalls.Load() != c.bad+1 {
					t.Fatalf("err %v after %d token calls, want success after %d", err, tokenCalls.Load(), c.bad+1)
				}
				return
			}
			var ae *APIError
			if err == nil || !errors.As(err, &ae) || ae.HTTPStatus != c.wantStatus || !IsRetryable(err) ||
				!strings.Contains(err.Error(), "<html>") || strings.Contains(err.Error(), "client id") {
				t.Fatalf("err %v: want a retryable HTTP %d quoting the page", err, c.wantStatus)
			}
		})
	}
}
