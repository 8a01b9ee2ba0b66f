package config

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

// accountKeys are the keys an accounts entry may set: everything that
// belongs to one account. clickhouse and http stay global.
var accountKeys = []string{"account", "timezone", "emarsys", "export", "ftp", "schedule", "notify"}

// LoadAccounts reads a config file that lists one account (the top-level
// keys, as Load) or several (an accounts: list) and returns one validated
// Config per account, in file order.
func LoadAccounts(path string) ([]*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cs, err := ParseAccounts(b, os.LookupEnv)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cs, nil
}

// ParseAccounts is Parse for files that may carry an accounts: list. Each
// entry takes the keys of the single-account top level (account, timezone,
// emarsys, export, ftp, schedule, notify); what an entry leaves out it
// inherits from the top level, mappings merged key by key and lists
// replaced whole. clickhouse and http are global. Every entry must name its
// account, and names must differ. Errors name the entry: accounts[1].emarsys.secret.
func ParseAccounts(b []byte, lookup func(string) (string, bool)) ([]*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, fmt.Errorf("not valid YAML: %w", err)
	}
	top := topMapping(&root)
	list := takeKey(top, "accounts")
	if list == nil {
		c, err := Parse(b, lookup)
		if err != nil {
			return nil, err
		}
		return []*Config{c}, nil
	}
	if list.Kind != yaml.SequenceNode || len(list.Content) == 0 {
		return nil, errors.New("accounts: must be a list of accounts, each a mapping with at least account:")
	}
	if top != nil && lookupKey(top, "account") != nil {
		return nil, errors.New("account: with an accounts: list, name each account in its entry, not at the top level")
	}
	var out []*Config
	seen := map[string]int{}
	for i, entry := range list.Content {
		p := fmt.Sprintf("accounts[%d]", i)
		if entry.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("%s: must be a mapping (account:, emarsys:, ftp: ...)", p)
		}
		for j := 0; j+1 < len(entry.Content); j += 2 {
			k := entry.Content[j].Value
			if k == "clickhouse" || k == "http" {
				return nil, fmt.Errorf("%s.%s: is global: set it at the top level, for all accounts", p, k)
			}
			if !contains(accountKeys, k) {
				return nil, fmt.Errorf("%s.%s: unknown key (an account takes %s)", p, k, strings.Join(accountKeys, ", "))
			}
		}
		name := lookupKey(entry, "account")
		if name == nil || name.Kind != yaml.ScalarNode || name.Value == "" {
			return nil, fmt.Errorf("%s.account: is required: every account needs its own name", p)
		}
		// The merged account goes through Parse: ${VAR} expansion, decoding,
		// defaults and checks are exactly those of a single-account file.
		doc := &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{mergeNodes(top, entry)}}
		c, err := Parse(mustMarshal(doc), lookup)
		if err != nil {
			return nil, prefixLines(err, p)
		}
		if j, dup := seen[c.Account]; dup {
			return nil, fmt.Errorf("%s.account: %q is already the name of accounts[%d]: names must differ (they key every table)", p, c.Account, j)
		}
		seen[c.Account] = i
		out = append(out, c)
	}
	return out, nil
}

// topMapping is the document's top-level mapping, nil when it has none.
func topMapping(root *yaml.Node) *yaml.Node {
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 && root.Content[0].Kind == yaml.MappingNode {
		return root.Content[0]
	}
	return nil
}

func lookupKey(m *yaml.Node, key string) *yaml.Node {
	if m == nil {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// takeKey removes key from mapping m and returns its value (nil: absent).
func takeKey(m *yaml.Node, key string) *yaml.Node {
	if m == nil {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			v := m.Content[i+1]
			m.Content = append(m.Content[:i:i], m.Content[i+2:]...)
			return v
		}
	}
	return nil
}

// mergeNodes returns base overlaid with over: mappings merge key by key,
// anything else in over replaces what base has. Neither input is changed.
func mergeNodes(base, over *yaml.Node) *yaml.Node {
	if base == nil || base.Kind != yaml.MappingNode || over.Kind != yaml.MappingNode {
		return over
	}
	out := &yaml.Node{Kind: yaml.MappingNode, Tag: base.Tag, Style: base.Style}
	for i := 0; i+1 < len(base.Content); i += 2 {
		k, v := base.Content[i], base.Content[i+1]
		if o := lookupKey(over, k.Value); o != nil {
			v = mergeNodes(v, o)
		}
		out.Content = append(out.Content, k, v)
	}
	for i := 0; i+1 < len(over.Content); i += 2 {
		if lookupKey(base, over.Content[i].Value) == nil {
			out.Content = append(out.Content, over.Content[i], over.Content[i+1])
		}
	}
	return out
}

// prefixLines names the entry in each per-account problem; global keys
// (clickhouse, http) keep their own names.
func prefixLines(err error, p string) error {
	lines := strings.Split(err.Error(), "\n")
	for i, l := range lines {
		if !strings.HasPrefix(l, "clickhouse.") && !strings.HasPrefix(l, "http.") {
			lines[i] = p + "." + l
		}
	}
	return errors.New(strings.Join(lines, "\n"))
}

// AllSecrets lists the secrets of every account, for scrubbing.
func AllSecrets(cs []*Config) []string {
	var out []string
	for _, c := range cs {
		for _, s := range c.Secrets() {
			if !contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}
