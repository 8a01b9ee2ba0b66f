package sim

import (
	"fmt"
	"strings"
	"time"
)

var (
	firstNames = []string{"Anna", "Jürgen", "Zoë", "Łukasz", "Maria", "Thomas", "Sophie", "Lukas", "Émilie", "Mehmet",
		"Katarzyna", "Johann", "Søren", "Elif", "Paul", "Lena", "Björn", "Ana", "Matthias", "Chloé"}
	lastNames = []string{"Müller", "Schmidt", "Gruber", "Nowak", "Huber", "Wagner", "Kovač", "Dvořák", "Bauer", "Öztürk",
		"Fischer", "Weiß", "Lefèvre", "Jensen", "Steiner", "Hofer", "García", "Wójcik", "Moser", "Brandstätter"}
	cities = []struct{ city, zip, state, country string }{
		{"Wien", "1010", "Wien", "Austria"},
		{"Graz", "8010", "Steiermark", "Austria"},
		{"Linz", "4020", "Oberösterreich", "Austria"},
		{"München", "80331", "Bayern", "Germany"},
		{"Berlin", "10115", "Berlin", "Germany"},
		{"Köln", "50667", "Nordrhein-Westfalen", "Germany"},
		{"Zürich", "8001", "Zürich", "Switzerland"},
		{"Kraków", "30-001", "Małopolskie", "Poland"},
		{"Praha", "110 00", "Praha", "Czech Republic"},
		{"Budapest", "1051", "Budapest", "Hungary"},
	}
	streets   = []string{"Hauptstraße", "Mariahilfer Straße", "Bahnhofstraße", "Ringstraße", "Lindenweg", "Schillerplatz"}
	companies = []string{"Alpen Logistik GmbH", "Donau Software AG", "Bäckerei Gruber", "Nowak Sp. z o.o.", "Steiner & Söhne KG", ""}
	jobs      = []string{"Sales Manager", "Developer", "Buyer", "CEO", "Marketing Lead", ""}
	depts     = []string{"Sales", "IT", "Purchasing", "Management", "Marketing", ""}
	inds      = []string{"Retail", "Software", "Food", "Logistics", "Manufacturing", ""}
)

// mix is splitmix64: a cheap, well-spread hash so contact values depend only
// on (UserID, field id) and never on generation order.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func pick[T any](h uint64, xs []T) T { return xs[h%uint64(len(xs))] }

// ContactValue returns the value of contact field id for this response's
// contact, as the CSV holds it. It is deterministic per UserID and id.
// Fields the vendor cannot export (27-29, 32, 33) and unknown ids 49-100 are empty.
func (r Response) ContactValue(id int) string {
	u := r.UserID
	h := mix(u ^ 0x5eed)
	hf := mix(u*1000003 + uint64(id)) // per-field randomness
	first, last := pick(h, firstNames), pick(h>>8, lastNames)
	c := pick(h>>16, cities)
	tricky := r.Tricky && h%4 == 0
	date := func(fromYear, years int, emptyPct uint64) string {
		if hf%100 < emptyPct {
			return ""
		}
		d := time.Date(fromYear, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, int((hf>>8)%uint64(365*years)))
		return d.Format("2006-01-02")
	}
	switch id {
	case 0:
		return pick(hf, []string{"sports|travel", "fashion", "tech|books", "", "food|wine|travel"})
	case 1:
		return first
	case 2:
		if tricky {
			return `O"Neil; ` + last + `, Jr.`
		}
		return last
	case 3:
		return fmt.Sprintf("%s.%s.%d@example.com", asciiLower(first), asciiLower(last), u)
	case 4:
		return date(1950, 55, 20)
	case 5:
		return pick(hf, []string{"male", "female", "", "female", "male"})
	case 6:
		return pick(hf, []string{"single", "married", "", "divorced"})
	case 7:
		return pick(hf, []string{"0", "1", "2", "3", ""})
	case 8:
		return pick(hf, []string{"Matura", "Bachelor", "Master", "PhD", ""})
	case 9:
		return pick(hf, []string{"", "", "Dr.", "Mag.", "Ing."})
	case 10:
		if tricky {
			return fmt.Sprintf("%s %d\r\nTop 4, \"Hinterhaus\"", pick(h>>24, streets), h%200+1)
		}
		return fmt.Sprintf("%s %d", pick(h>>24, streets), h%200+1)
	case 11:
		return c.city
	case 12:
		return c.state
	case 13:
		return c.zip
	case 14:
		return c.country
	case 15, 21:
		return fmt.Sprintf("+43 1 %07d", hf%10000000)
	case 16, 22:
		if hf%3 == 0 {
			return fmt.Sprintf("+43 1 %07d", hf%10000000)
		}
		return ""
	case 17:
		return pick(hf, jobs)
	case 18:
		if tricky {
			return "Müller, Meier & Co \"Bau\"\nGmbH"
		}
		return pick(h>>32, companies)
	case 19:
		return pick(hf, depts)
	case 20:
		return pick(hf, inds)
	case 23:
		return pick(hf, []string{"1-9", "10-49", "50-249", "250+", ""})
	case 24:
		return fmt.Sprint(hf % 50000)
	case 25:
		return fmt.Sprintf("https://www.%s.example.com/", asciiLower(last))
	case 26:
		return pick(hf, []string{"HTML", "Text", "HTML"})
	case 30:
		return date(2025, 1, 30)
	case 31:
		return pick(hf, []string{"TRUE", "TRUE", "FALSE", ""})
	case 34:
		return pick(hf, []string{"Website", "Shop checkout", "Event", ""})
	case 35:
		return pick(h>>40, []string{"de", "en", "pl", "cs"})
	case 36:
		return pick(hf, []string{"yes", "no"})
	case 37:
		return fmt.Sprintf("+43 664 %07d", hf%10000000)
	case 38:
		return pick(hf, firstNames)
	case 39, 40:
		return date(1955, 50, 60)
	case 41:
		return fmt.Sprintf("%s %d", pick(hf, streets), hf%90+1)
	case 42:
		return pick(hf, cities).zip
	case 43:
		return pick(hf, cities).city
	case 44:
		return pick(hf, cities).state
	case 45:
		return pick(hf, cities).country
	case 46:
		return pick(hf, []string{"Herr", "Frau", "Divers", ""})
	case 47:
		return pick(hf, []string{"TRUE", "TRUE", "TRUE", "FALSE"})
	case 48:
		return date(2010, 16, 5)
	}
	if id > 100 {
		if tricky && id%2 == 1 {
			return fmt.Sprintf("cf%d-%x; \"x\",\ny", id, hf%0xffff)
		}
		return fmt.Sprintf("cf%d-%x", id, hf%0xfffff)
	}
	return ""
}

// asciiLower folds a name into an e-mail local part.
func asciiLower(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(foldReplacer.Replace(s)) {
		if r >= 'a' && r <= 'z' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// foldReplacer is safe for concurrent use and never changes.
var foldReplacer = strings.NewReplacer("ä", "ae", "ö", "oe", "ü", "ue", "ß", "ss", "Ä", "ae", "Ö", "oe", "Ü", "ue",
	"ë", "e", "é", "e", "è", "e", "Ł", "l", "ł", "l", "ó", "o", "ø", "o", "ř", "r", "č", "c", "á", "a", "í", "i", "ć", "c", "ą", "a")
