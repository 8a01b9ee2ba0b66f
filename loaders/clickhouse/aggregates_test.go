package clickhouse

import "testing"

// LowCardinality is used only where the server has it without a setting;
// 18.16 (the oldest supported) keeps plain String.
func TestUseLowCardinality(t *testing.T) {
	for _, c := range []struct {
		v    string
		want bool
	}{{"18.16.1", false}, {"19.8.3", false}, {"19.9.2", true}, {"20.3.1", true}, {"25.8.1.1", true}} {
		if got := useLowCardinality(parseVersion(c.v)); got != c.want {
			t.Errorf("useLowCardinality(%s) = %v, want %v", c.v, got, c.want)
		}
	}
}
