package main

import (
	"context"
	"fmt"

	ch "github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// aggregateChecks pair each BI aggregate view with the same numbers computed
// from email_responses; the killed and restarted runs must leave them equal.
var aggregateChecks = []struct{ view, fact string }{
	{`SELECT concat(toString(day), '|', toString(campaign_id), '|', toString(opens), '|', toString(unique_openers), '|', toString(clicks), '|', toString(unique_clickers), '|', toString(responses)) AS k FROM %[1]s.campaign_daily WHERE account = '%[2]s'`,
		`SELECT concat(toString(event_date), '|', toString(ifNull(campaign_id, 0)), '|', toString(countIf(source = 'open')), '|', toString(uniqExactIf(user_id, source = 'open')), '|', toString(countIf(source = 'click')), '|', toString(uniqExactIf(user_id, source = 'click')), '|', toString(count())) AS k FROM %[1]s.email_responses WHERE account = '%[2]s' GROUP BY event_date, ifNull(campaign_id, 0)`},
	{`SELECT concat(toString(day), '|', url, '|', toString(clicks), '|', toString(unique_clickers)) AS k FROM %[1]s.link_daily WHERE account = '%[2]s'`,
		`SELECT concat(toString(event_date), '|', url, '|', toString(count()), '|', toString(uniqExact(user_id))) AS k FROM %[1]s.email_responses WHERE account = '%[2]s' AND source = 'click' AND url != '' GROUP BY event_date, url`},
	{`SELECT concat(toString(hour), '|', toString(opens), '|', toString(clicks), '|', toString(responses)) AS k FROM %[1]s.hourly WHERE account = '%[2]s'`,
		`SELECT concat(toString(toStartOfHour(event_time)), '|', toString(countIf(source = 'open')), '|', toString(countIf(source = 'click')), '|', toString(count())) AS k FROM %[1]s.email_responses WHERE account = '%[2]s' GROUP BY toStartOfHour(event_time)`},
}

// aggregatesDiffer counts the aggregate rows (of all views) that are not
// equal to their computation over the fact table, in either direction.
func aggregatesDiffer(ctx context.Context, conn ch.Conn, db string) (int, error) {
	diff := 0
	for _, c := range aggregateChecks {
		for _, pair := range [][2]string{{c.view, c.fact}, {c.fact, c.view}} {
			var n uint64
			a, b := fmt.Sprintf(pair[0], "`"+db+"`", account), fmt.Sprintf(pair[1], "`"+db+"`", account)
			if err := conn.QueryRow(ctx, "SELECT count() FROM ("+a+") WHERE k NOT IN ("+b+")").Scan(&n); err != nil {
				return diff, fmt.Errorf("compare aggregates with the facts: %w", err)
			}
			diff += int(n)
		}
	}
	return diff, nil
}
