package config

import (
	"strings"
	"testing"
)

func TestHTTPListen(t *testing.T) {
	base := `
emarsys: {user: u, secret: s3cret}
export: {contact_fields: [3]}
ftp: {host: ftp.example.com, user: u, password: p}
`
	env := func(string) (string, bool) { return "", false }
	for _, tc := range []struct {
		yaml, want, err string
	}{
		{"", DefaultListen, ""},
		{"http: {listen: \"\"}", "", ""},
		{"http: {listen: \"0.0.0.0:9100\"}", "0.0.0.0:9100", ""},
		{"http: {listen: \"9100\"}", "", "http.listen: must be host:port"},
	} {
		c, err := Parse([]byte(base+tc.yaml), env)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.yaml, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", tc.yaml, err)
		}
		if got := c.HTTP.Addr(); got != tc.want {
			t.Errorf("%q: Addr() = %q, want %q", tc.yaml, got, tc.want)
		}
	}
}
