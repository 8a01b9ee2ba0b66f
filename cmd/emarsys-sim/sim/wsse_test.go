package sim

import (
	"testing"
	"time"
)

func TestWSSEDigestVector(t *testing.T) {
	got := WSSEDigest("d36e3162829ed8fa7e0ae5ea6e1a1d4c", "2026-12-03T15:04:05+00:00", "s3cret")
	if want := "MzNiOGExNzllYzQyNjM3ZjlmMTlhZGFjN2UzOWMzNjYxYzNhNTM0MA=="; got != want {
		t.Fatalf("digest = %s, want %s", got, want)
	}
}

func TestCheckWSSE(t *testing.T) {
	now := time.Date(2026, 12, 3, 15, 4, 5, 0, time.UTC)
	const created = "2026-12-03T15:04:05+00:00"
	tests := []struct {
		name, header, want string
	}{
		{"ok", WSSEHeader("u", "n1", created, "s"), ""},
		{"missing", "", "Unauthorized: X-WSSE header is missing"},
		{"unknown user", WSSEHeader("x", "n2", created, "s"), "Unauthorized: unknown user"},
		{"wrong digest", WSSEHeader("u", "n3", created, "t"), "Unauthorized: invalid PasswordDigest"},
		{"reused nonce", WSSEHeader("u", "n1", created, "s"), "Unauthorized: nonce already used"},
		{"skew", WSSEHeader("u", "n4", "2026-12-03T15:10:06+00:00", "s"), "Unauthorized: request time frame is invalid (Created is -6m1s off the server clock)"},
		{"zone ok", WSSEHeader("u", "n5", "2026-12-03T16:06:05+01:00", "s"), ""},
	}
	var ns nonces
	for _, tc := range tests {
		err := checkWSSE(tc.header, "u", "s", now, &ns)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}
