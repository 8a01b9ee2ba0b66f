// Package sim is a stand-in for the Emarsys responses export: a deterministic
// generator of email responses, the CSV writer as the vendor writes it, and an
// HTTP server speaking the export API that delivers files over FTP.
//
// It is the oracle of the product's tests: what the generator says happened
// is what must arrive in the warehouse.
package sim

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"
	_ "time/tzdata" // the account zone must load on hosts without zoneinfo
)

// DefaultZone is the account time zone when none is given.
const DefaultZone = "Europe/Vienna"

// Response sources as the CSV writes them.
const (
	SourceOpen             = "open"
	SourceClick            = "click"
	SourceUnsubscribe      = "unsubscribe"
	SourceComplaint        = "complaint"
	SourceRegistrationForm = "registration_form"
	SourceTellAFriend      = "tell_a_friend"
	SourceContactUs        = "contact_us"
	SourceChangeProfile    = "change_profile"
)

// requestSources maps the request's `sources` values to the CSV source values.
var requestSources = map[string]string{
	"trackable_links":    SourceClick,
	"mail_open":          SourceOpen,
	"unsubscribe":        SourceUnsubscribe,
	"complaint":          SourceComplaint,
	"registration_forms": SourceRegistrationForm,
	"tell_a_friend":      SourceTellAFriend,
	"contact_us":         SourceContactUs,
	"change_profile":     SourceChangeProfile,
}

// CSVSource returns the CSV source value of a request source ("mail_open" -> "open").
func CSVSource(requestSource string) (string, bool) {
	s, ok := requestSources[requestSource]
	return s, ok
}

// Generator makes deterministic email responses. The zero value works.
type Generator struct {
	Seed          int64
	Loc           *time.Location // account time zone, default Europe/Vienna
	Contacts      int            // default 5000
	Campaigns     int            // default 40
	EventsPerHour int            // mean responses per hour, default 200
	Tricky        bool           // values holding ';' ',' '"' and line breaks
}

// Response is one row of the export, before formatting.
type Response struct {
	UserID           uint64
	Time             time.Time // the instant, UTC, whole seconds
	Source           string    // CSV value: open, click, unsubscribe, ...
	CampaignID       uint64
	CampaignTitle    string
	SectionHeader    string
	SectionGroup     string
	LinkTitle        string
	URL              string
	VersionName      string
	CampaignCategory string
	LinkCategory     string
	// Tricky makes ContactValue return values with delimiters, quotes and line breaks.
	Tricky bool
}

// Key is the identity the warehouse collapses duplicates on.
type Key struct {
	UserID     uint64
	Source     string
	Time       time.Time
	CampaignID uint64
	URL        string
	LinkTitle  string
}

// Key returns the response's identity.
func (r Response) Key() Key {
	return Key{r.UserID, r.Source, r.Time, r.CampaignID, r.URL, r.LinkTitle}
}

// Location returns the account zone, loading the default when unset.
func (g Generator) Location() *time.Location {
	if g.Loc != nil {
		return g.Loc
	}
	loc, err := time.LoadLocation(DefaultZone)
	if err != nil {
		// time/tzdata is embedded, so this cannot fail.
		panic(err)
	}
	return loc
}

func (g Generator) withDefaults() Generator {
	g.Loc = g.Location()
	if g.Contacts <= 0 {
		g.Contacts = 5000
	}
	if g.Campaigns <= 0 {
		g.Campaigns = 40
	}
	if g.EventsPerHour <= 0 {
		g.EventsPerHour = 200
	}
	return g
}

// Responses returns every response with from <= Time < to, sorted by Time,
// then UserID (then the rest of the key, so the order is total).
//
// Each UTC hour is generated on its own from (Seed, hour start), so any range
// is the union of its hours filtered by range: overlapping or adjacent ranges
// agree row for row.
func (g Generator) Responses(from, to time.Time) []Response {
	g = g.withDefaults()
	var out []Response
	for h := from.UTC().Truncate(time.Hour); h.Before(to); h = h.Add(time.Hour) {
		for _, r := range g.hour(h) {
			if !r.Time.Before(from) && r.Time.Before(to) {
				out = append(out, r)
			}
		}
	}
	return out
}

// Count returns the number of responses in [from, to) per CSV source, and the total.
func (g Generator) Count(from, to time.Time) (map[string]int, int) {
	rs := g.Responses(from, to)
	m := map[string]int{}
	for _, r := range rs {
		m[r.Source]++
	}
	return m, len(rs)
}

// Filter keeps the responses whose source was asked for. sources are request
// values (trackable_links, mail_open, ...); empty or "all" keeps everything.
func (g Generator) Filter(rs []Response, sources []string) []Response {
	want := map[string]bool{}
	for _, s := range sources {
		if s == "all" {
			return rs
		}
		if v, ok := requestSources[s]; ok {
			want[v] = true
		}
	}
	if len(sources) == 0 {
		return rs
	}
	var out []Response
	for _, r := range rs {
		if want[r.Source] {
			out = append(out, r)
		}
	}
	return out
}

// sourceWeights are per mille; clicks and opens dominate as in real accounts.
var sourceWeights = []struct {
	source string
	w      int
}{
	{SourceOpen, 650},
	{SourceClick, 300},
	{SourceUnsubscribe, 15},
	{SourceComplaint, 5},
	{SourceRegistrationForm, 10},
	{SourceTellAFriend, 5},
	{SourceContactUs, 5},
	{SourceChangeProfile, 10},
}

// hour generates the responses of the UTC hour starting at h.
func (g Generator) hour(h time.Time) []Response {
	rng := rand.New(rand.NewPCG(uint64(g.Seed), uint64(h.Unix())))
	// Daily curve in the account's zone: busy afternoons, quiet nights (x0.5..x1.5),
	// then +-10% noise so no two days look alike.
	lh := float64(h.In(g.Loc).Hour())
	curve := 1 + 0.5*math.Sin(2*math.Pi*(lh-9)/24)
	n := int(math.Round(float64(g.EventsPerHour) * curve * (0.9 + 0.2*rng.Float64())))

	seen := make(map[Key]bool, n)
	out := make([]Response, 0, n)
	for len(out) < n {
		r := g.event(rng, h)
		if seen[r.Key()] {
			// The warehouse collapses identical events; never make one.
			continue
		}
		seen[r.Key()] = true
		out = append(out, r)
	}
	slices.SortFunc(out, compareResponses)
	return out
}

func compareResponses(a, b Response) int {
	return cmp.Or(
		a.Time.Compare(b.Time),
		cmp.Compare(a.UserID, b.UserID),
		cmp.Compare(a.Source, b.Source),
		cmp.Compare(a.CampaignID, b.CampaignID),
		cmp.Compare(a.URL, b.URL),
		cmp.Compare(a.LinkTitle, b.LinkTitle),
	)
}

func (g Generator) event(rng *rand.Rand, h time.Time) Response {
	k := rng.IntN(g.Contacts)
	c := rng.IntN(g.Campaigns)
	r := Response{
		UserID: userID(k),
		Time:   h.Add(time.Duration(rng.IntN(3600)) * time.Second),
		Tricky: g.Tricky,
	}
	x := rng.IntN(1000)
	for _, sw := range sourceWeights {
		if x < sw.w {
			r.Source = sw.source
			break
		}
		x -= sw.w
	}
	cp := g.campaign(c)
	r.CampaignID = cp.id
	r.CampaignTitle = cp.title
	r.CampaignCategory = cp.category
	r.VersionName = cp.versions[rng.IntN(len(cp.versions))]
	if r.Source == SourceClick {
		l := g.link(c, rng.IntN(6))
		r.LinkTitle, r.URL, r.LinkCategory, r.SectionHeader, r.SectionGroup = l.title, l.url, l.category, l.header, l.group
	}
	return r
}

func userID(k int) uint64 { return 287000000 + uint64(k)*7 + 3 }

type campaign struct {
	id              uint64
	title, category string
	versions        []string
}

func (g Generator) campaign(c int) campaign {
	// Campaigns are weekly from the first Monday of 2026; the kind rotates.
	week := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC).AddDate(0, 0, 7*c)
	_, wn := week.ISOWeek()
	cp := campaign{id: 100000 + uint64(c), versions: []string{"Version A"}}
	switch c % 5 {
	case 0, 1:
		cp.title = fmt.Sprintf("Newsletter %s week %d", week.Format("2006-01"), wn)
		cp.category = "Newsletter"
		cp.versions = []string{"Version A", "Version B"}
	case 2:
		cp.title = fmt.Sprintf("Promo %s Sale", []string{"Winter", "Spring", "Summer", "Autumn"}[int(week.Month()-1)/3])
		cp.category = "Promotion"
	case 3:
		cp.title = fmt.Sprintf("Welcome series step %d", c%4+1)
		cp.category = "Lifecycle"
		cp.versions = []string{"default"}
	default:
		cp.title = fmt.Sprintf("Reactivation Q%d Über-Angebot", int(week.Month()-1)/3+1)
		cp.category = "Lifecycle"
	}
	if g.Tricky && c%7 == 3 {
		cp.title = fmt.Sprintf("Sale; 50%% off \"Winter\", now\nfor you (%d)", c)
		cp.category = "Promo, \"hot\"; seasonal"
	}
	return cp
}

type link struct{ title, url, category, header, group string }

func (g Generator) link(c, j int) link {
	titles := []string{"Shop now", "Read more", "View in browser", "Jetzt kaufen", "Facebook", "Impressum"}
	cats := []string{"product", "content", "service", "product", "social", "legal"}
	headers := []string{"Top offers", "Editorial", "Header", "Top offers", "Follow us", "Footer"}
	groups := []string{"Body", "Body", "Header", "Body", "Footer", "Footer"}
	l := link{
		title:    titles[j],
		url:      fmt.Sprintf("https://www.example.com/%s/item-%d-%d?utm_campaign=%d", cats[j], c, j, 100000+c),
		category: cats[j],
		header:   headers[j],
		group:    groups[j],
	}
	if g.Tricky && (c+j)%5 == 0 {
		l.title = fmt.Sprintf("Buy \"2, get 1\"; free\r\nnow %d", j)
		l.url = fmt.Sprintf("https://www.example.com/a;b/item,%d?q=\"x\"&j=%d", c, j)
		l.header = "Top; offers, \"new\""
	}
	return l
}
