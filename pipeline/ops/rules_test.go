package ops_test

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	chstore "github.com/emarsys-etl/emarsys-etl/loaders/clickhouse"
	"github.com/emarsys-etl/emarsys-etl/pipeline/ops"
)

// captureReg remembers what is registered so the test can ask every
// collector for its metric names.
type captureReg struct{ cs []prometheus.Collector }

func (c *captureReg) Register(x prometheus.Collector) error { c.cs = append(c.cs, x); return nil }
func (c *captureReg) MustRegister(xs ...prometheus.Collector) {
	c.cs = append(c.cs, xs...)
}
func (c *captureReg) Unregister(prometheus.Collector) bool { return false }

type noLedger struct{}

func (noLedger) Windows(context.Context, string, time.Time, time.Time) ([]chstore.WindowRecord, error) {
	return nil, nil
}

// Every metric the example alert rules and the README name is one the
// program exports: the rules cannot silently watch nothing.
func TestRulesAndREADMENameExportedMetrics(t *testing.T) {
	reg := &captureReg{}
	ops.NewMetrics(reg, "acme")
	ops.RegisterLedger(reg, noLedger{}, "acme")
	names := map[string]bool{"emarsys_etl_build_info": true} // registered by main
	ch := make(chan *prometheus.Desc, 100)
	for _, c := range reg.cs {
		c.Describe(ch)
	}
	close(ch)
	fq := regexp.MustCompile(`fqName: "([a-z_]+)"`)
	for d := range ch {
		if m := fq.FindStringSubmatch(d.String()); m != nil {
			names[m[1]] = true
		}
	}

	b, err := os.ReadFile("../../configs/prometheus-rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatalf("rules file: %v", err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	used := regexp.MustCompile(`emarsys_etl_[a-z_]+`)
	check := func(where, text string) {
		for _, n := range used.FindAllString(text, -1) {
			base := n
			for _, suf := range []string{"_bucket", "_count", "_sum"} {
				base = strings.TrimSuffix(base, suf)
			}
			if !names[base] && !names[n] {
				t.Errorf("%s names %s, which is not exported", where, n)
			}
		}
	}
	alerts := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			alerts++
			check("alert "+r.Alert, r.Expr)
		}
	}
	if alerts == 0 {
		t.Fatal("no alert rules")
	}
	check("README", string(readme))
}
