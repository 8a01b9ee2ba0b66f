// Package schema holds the field catalogue of the Emarsys responses export and
// the versioned ClickHouse DDL that stores it.
//
// Column names in SQL come from this catalogue (or from a validated config
// name for custom fields), never from CSV header text.
package schema

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Kind is how a field's text is typed on its way into ClickHouse.
type Kind int

const (
	// KindString is kept as it came; empty stays the empty string.
	KindString Kind = iota
	// KindUInt64 is an unsigned integer; empty is NULL (0 for user_id, which may not be empty).
	KindUInt64
	// KindDate is a calendar date; empty and the vendor's zero dates are NULL.
	KindDate
	// KindDateTime is a local time of the account, stored in UTC.
	KindDateTime
)

// ClickHouseType is the column type used for a kind in email_responses.
func (k Kind) ClickHouseType() string {
	switch k {
	case KindUInt64:
		return "Nullable(UInt64)"
	case KindDate:
		return "Nullable(Date)"
	case KindDateTime:
		return "DateTime('UTC')"
	default:
		return "String"
	}
}

func (k Kind) String() string {
	switch k {
	case KindUInt64:
		return "uint64"
	case KindDate:
		return "date"
	case KindDateTime:
		return "datetime"
	default:
		return "string"
	}
}

// Field is one exportable field.
type Field struct {
	ID      int
	Name    string   // English header text as the vendor writes it
	Aliases []string // other header texts seen for it (other documents, other languages)
	Column  string   // ClickHouse column name
	Kind    Kind
}

// Matches reports whether header text h names this field (case and space insensitive).
func (f Field) Matches(h string) bool {
	n := normHeader(h)
	if n == normHeader(f.Name) {
		return true
	}
	for _, a := range f.Aliases {
		if n == normHeader(a) {
			return true
		}
	}
	return false
}

func normHeader(s string) string {
	return strings.Join(strings.Fields(strings.ToLower(s)), " ")
}

// Analysis field ids of getresponses.
const (
	AnalysisCampaignTitle    = 1
	AnalysisSectionHeader    = 2
	AnalysisSectionGroup     = 3
	AnalysisLinkTitle        = 4
	AnalysisURL              = 5
	AnalysisTime             = 8
	AnalysisCampaignID       = 12
	AnalysisVersionName      = 13
	AnalysisCampaignCategory = 14
	AnalysisLinkCategory     = 15
)

// The columns that every export has, around the requested fields.
var (
	UserIDField = Field{ID: -1, Name: "user_id", Column: "user_id", Kind: KindUInt64}
	SourceField = Field{ID: -2, Name: "source", Aliases: []string{"Quelle"}, Column: "source", Kind: KindString}
)

var analysisFields = map[int]Field{
	1:  {1, "Campaign title", []string{"Kampagnentitel", "Campaign name"}, "campaign_title", KindString},
	2:  {2, "Section header", []string{"Abschnittsüberschrift"}, "section_header", KindString},
	3:  {3, "Section group", []string{"Abschnittsgruppe"}, "section_group", KindString},
	4:  {4, "Link title", []string{"Linktitel"}, "link_title", KindString},
	5:  {5, "Url", []string{"URL", "Link URL"}, "url", KindString},
	8:  {8, "Time", []string{"Zeit", "Date", "Timestamp"}, "event_time", KindDateTime},
	12: {12, "Campaign ID", []string{"Kampagnen-ID", "Email ID"}, "campaign_id", KindUInt64},
	13: {13, "Version Name", []string{"Versionsname", "Version"}, "version_name", KindString},
	14: {14, "Campaign category", []string{"Kampagnenkategorie"}, "campaign_category", KindString},
	15: {15, "Link category", []string{"Linkkategorie"}, "link_category", KindString},
}

var contactFields = map[int]Field{
	0:  {0, "Interests", []string{"Interessen"}, "interests", KindString},
	1:  {1, "First Name", []string{"Vorname", "Firstname"}, "first_name", KindString},
	2:  {2, "Last Name", []string{"Nachname", "Lastname"}, "last_name", KindString},
	3:  {3, "E-Mail", []string{"Email", "E-mail address"}, "email", KindString},
	4:  {4, "Date of Birth", []string{"Geburtsdatum", "Birthdate"}, "date_of_birth", KindDate},
	5:  {5, "Gender", []string{"Geschlecht"}, "gender", KindString},
	6:  {6, "Marital Status", []string{"Familienstand"}, "marital_status", KindString},
	7:  {7, "Children", []string{"Kinder"}, "children", KindString},
	8:  {8, "Education", []string{"Ausbildung"}, "education", KindString},
	9:  {9, "Title", []string{"Titel"}, "title", KindString},
	10: {10, "Address", []string{"Adresse"}, "address", KindString},
	11: {11, "City", []string{"Ort", "Stadt"}, "city", KindString},
	12: {12, "State", []string{"Region", "Bundesland"}, "state", KindString},
	13: {13, "ZIP Code", []string{"PLZ", "Zip"}, "zip_code", KindString},
	14: {14, "Country", []string{"Land"}, "country", KindString},
	15: {15, "Phone", []string{"Telefon"}, "phone", KindString},
	16: {16, "Fax", nil, "fax", KindString},
	17: {17, "Job Position", []string{"Position"}, "job_position", KindString},
	18: {18, "Company", []string{"Firma", "Unternehmen"}, "company", KindString},
	19: {19, "Department", []string{"Abteilung"}, "department", KindString},
	20: {20, "Industry", []string{"Branche"}, "industry", KindString},
	21: {21, "Phone (office)", []string{"Telefon (Büro)"}, "phone_office", KindString},
	22: {22, "Fax (office)", []string{"Fax (Büro)"}, "fax_office", KindString},
	23: {23, "Number of Employees", []string{"Anzahl der Mitarbeiter"}, "number_of_employees", KindString},
	24: {24, "Annual Revenue (in 000 EUR)", []string{"Jahresumsatz (in 000 EUR)"}, "annual_revenue", KindString},
	25: {25, "URL", []string{"Website"}, "contact_url", KindString},
	26: {26, "Preferred e-mail format", []string{"Bevorzugtes E-Mail-Format"}, "preferred_email_format", KindString},
	30: {30, "Last mail opened", nil, "stat_30", KindString},
	31: {31, "Opt-In", nil, "opt_in", KindString},
	34: {34, "Contact form", []string{"Kontaktformular"}, "contact_form", KindString},
	35: {35, "Registration Language", []string{"Registrierungssprache"}, "registration_language", KindString},
	36: {36, "Newsletter", nil, "newsletter", KindString},
	37: {37, "Mobile", []string{"Mobil", "Mobiltelefon"}, "mobile", KindString},
	38: {38, "First Name of Partner", []string{"Vorname des Partners"}, "partner_first_name", KindString},
	39: {39, "Birthdate of Partner", []string{"Geburtsdatum des Partners"}, "partner_birthdate", KindDate},
	40: {40, "Anniversary", []string{"Jahrestag"}, "anniversary", KindDate},
	41: {41, "Company Address", []string{"Firmenadresse"}, "company_address", KindString},
	42: {42, "Zip Code (office)", []string{"PLZ (Büro)"}, "zip_code_office", KindString},
	43: {43, "City (office)", []string{"Ort (Büro)"}, "city_office", KindString},
	44: {44, "State (office)", []string{"Region (office)", "Bundesland (Büro)"}, "state_office", KindString},
	45: {45, "Country (office)", []string{"Land (Büro)"}, "country_office", KindString},
	46: {46, "Salutation", []string{"Anrede"}, "salutation", KindString},
	47: {47, "E-Mail valid", []string{"E-Mail gültig"}, "email_valid", KindString},
	48: {48, "Date of first registration", []string{"Datum der Erstregistrierung"}, "first_registration_date", KindDate},
}

// NotExportable are the contact field ids the vendor refuses in an export.
var NotExportable = []int{27, 28, 29, 32, 33}

// AnalysisField returns the catalogue entry of an analysis field id.
func AnalysisField(id int) (Field, bool) {
	f, ok := analysisFields[id]
	return f, ok
}

// AnalysisFieldIDs lists the ten analysis field ids in ascending order.
func AnalysisFieldIDs() []int {
	return sortedKeys(analysisFields)
}

// ContactField returns the catalogue entry of a system contact field id (0-48).
func ContactField(id int) (Field, bool) {
	f, ok := contactFields[id]
	return f, ok
}

// ContactFieldIDs lists the exportable system contact field ids in ascending order.
func ContactFieldIDs() []int {
	return sortedKeys(contactFields)
}

func sortedKeys(m map[int]Field) []int {
	ids := make([]int, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	return ids
}

var identRe = regexp.MustCompile(`^[a-z][a-z0-9_]{0,47}$`)

// ValidIdentifier reports whether s may be used as part of a column name.
func ValidIdentifier(s string) bool { return identRe.MatchString(s) }

// CustomField builds the entry of an account's custom contact field (id > 100).
// name is the header text the account uses and, lowercased, the column suffix;
// it must be a plain identifier so it can never smuggle SQL.
func CustomField(id int, column, header string, kind Kind) (Field, error) {
	if id <= 100 {
		return Field{}, fmt.Errorf("custom field id %d: custom contact fields have ids above 100", id)
	}
	if !ValidIdentifier(column) {
		return Field{}, fmt.Errorf("custom field %d: column %q must match %s", id, column, identRe)
	}
	if header == "" {
		header = column
	}
	return Field{ID: id, Name: header, Column: "cf_" + column, Kind: kind}, nil
}

// ResolveContactField returns the catalogue entry for id, consulting custom fields for ids above 100.
func ResolveContactField(id int, custom map[int]Field) (Field, error) {
	for _, x := range NotExportable {
		if id == x {
			return Field{}, fmt.Errorf("Invalid contact field id: %d (fields 27, 28, 29, 32 and 33 cannot be exported)", id)
		}
	}
	if f, ok := contactFields[id]; ok {
		return f, nil
	}
	if f, ok := custom[id]; ok {
		return f, nil
	}
	if id > 100 {
		return Field{}, fmt.Errorf("contact field %d is a custom field: declare it under export.custom_fields with a column name", id)
	}
	return Field{}, fmt.Errorf("Invalid contact field id: %d", id)
}
