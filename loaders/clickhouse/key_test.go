package clickhouse

import "testing"

// The Go response key must equal the server's cityHash64 over the same
// values, or the direct path would store keys the anti-join cannot match.
func TestGoKeyMatchesServer(t *testing.T) {
	s := newTestStore(t, 0)
	ok, err := s.checkKeys(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if !ok || !s.keysAgree {
		t.Fatalf("Go response keys differ from the server's cityHash64 (server %s)", s.version)
	}
}
