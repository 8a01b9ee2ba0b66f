package notify

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandlerWakesOnlyItsWaiter(t *testing.T) {
	reg := NewRegistry(nil)
	srv := httptest.NewServer(reg.Handler())
	defer srv.Close()
	tokA, wakeA, releaseA := reg.Register("a")
	_, wakeB, releaseB := reg.Register("b")
	defer releaseB()

	for _, tc := range []struct {
		method, path string
		body         string
		want         int
	}{
		{"POST", PathPrefix + tokA, `{"replyCode":0,"data":{"id":"2140","status":"done"}}`, 200},
		{"GET", PathPrefix + tokA, "", 200}, // a second call merges into the pending wake-up
		{"POST", PathPrefix + "0123456789abcdef0123456789abcdef", "", 404},
		{"POST", PathPrefix, "", 404},
		{"PUT", PathPrefix + tokA, "", 405},
	} {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s: HTTP %d, want %d", tc.method, tc.path, resp.StatusCode, tc.want)
		}
	}
	select {
	case <-wakeA:
	default:
		t.Fatal("waiter a was not woken")
	}
	select {
	case <-wakeA:
		t.Fatal("two calls left two wake-ups; want them merged into one")
	case <-wakeB:
		t.Fatal("waiter b was woken by a's token")
	default:
	}
	if reg.Calls() != 2 || reg.Rejected() != 2 {
		t.Errorf("calls=%d rejected=%d, want 2 and 2", reg.Calls(), reg.Rejected())
	}

	// After release, the token is refused.
	releaseA()
	resp, err := srv.Client().Post(srv.URL+PathPrefix+tokA, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("released token: HTTP %d, want 404", resp.StatusCode)
	}
}

func TestURL(t *testing.T) {
	if got := URL("https://etl.example.com/", "ab"); got != "https://etl.example.com/notify/ab" {
		t.Fatal(got)
	}
}
