package pipeline

import (
	"context"

	chstore "github.com/emarsys-etl/emarsys-etl/loaders/clickhouse"
)

// RefreshAggregates is an AfterLoad hook: it recomputes the BI aggregates of
// the days window w touches once its rows are in email_responses. A failure
// retries the window, whose load adds nothing the second time.
func RefreshAggregates(store *chstore.Store, account string) func(context.Context, Window, chstore.WindowRecord) error {
	return func(ctx context.Context, w Window, _ chstore.WindowRecord) error {
		return store.RefreshAggregates(ctx, account, w.Start, w.End)
	}
}
