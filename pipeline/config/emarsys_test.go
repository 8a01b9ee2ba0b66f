package config

import (
	"strings"
	"testing"
)

func TestAuthModesAndDelivery(t *testing.T) {
	vars := env(map[string]string{"SECRET": "s3", "FTP_PASSWORD": "pw"})
	for _, tc := range []struct {
		name      string
		extra     string
		base      string
		tokenURL  string
		wantError string
	}{
		{"default is oauth2 on v3", "", "https://api.emarsys.net/api/v3/", "https://auth.emarsys.net/oauth2/token", ""},
		{"wsse on v2", "emarsys: {auth: wsse, user: u, secret: \"${SECRET}\"}", "https://api.emarsys.net/api/v2/", "", ""},
		{"oauth2 moves a v2 base to v3, token on the same host",
			"emarsys: {base_url: \"http://sim:8080/api/v2/\", user: u, secret: \"${SECRET}\"}", "http://sim:8080/api/v3/", "http://sim:8080/oauth2/token", ""},
		{"wsse moves a v3 base to v2",
			"emarsys: {auth: wsse, base_url: \"http://sim:8080/api/v3/\", user: u, secret: \"${SECRET}\"}", "http://sim:8080/api/v2/", "", ""},
		{"unknown auth", "emarsys: {auth: basic, user: u, secret: \"${SECRET}\"}", "", "", "emarsys.auth: must be oauth2 or wsse"},
		{"bad method", "export: {contact_fields: [1, 3], distribution_method: s3}", "", "", "Invalid value for distribution_method"},
		{"notify needs a URL", "notify: {public_url: etl.example.com}", "", "", "notify.public_url: must be an http(s) URL"},
		{"notify needs the listener", "notify: {public_url: \"https://etl.example.com\"}\nhttp: {listen: \"\"}", "", "", "notify.public_url: needs the HTTP listener"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			y := minimal
			if tc.extra != "" {
				key := strings.SplitN(tc.extra, ":", 2)[0]
				var kept []string
				for _, line := range strings.Split(minimal, "\n") {
					if !strings.HasPrefix(line, key+":") {
						kept = append(kept, line)
					}
				}
				y = strings.Join(kept, "\n") + "\n" + tc.extra + "\n"
			}
			c, err := Parse([]byte(y), vars)
			if tc.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantError) {
					t.Fatalf("err = %v, want %q", err, tc.wantError)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Emarsys.BaseURL != tc.base || c.Emarsys.TokenURL != tc.tokenURL {
				t.Fatalf("base %q token %q, want %q %q", c.Emarsys.BaseURL, c.Emarsys.TokenURL, tc.base, tc.tokenURL)
			}
		})
	}
	// local needs no FTP server.
	c, err := Parse([]byte("account: shop\nemarsys: {user: u, secret: s}\nexport: {contact_fields: [1, 3], distribution_method: local}\n"), vars)
	if err != nil || c.Export.DistributionMethod != "local" {
		t.Fatalf("local without ftp: %v", err)
	}
}
