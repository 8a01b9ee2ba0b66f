-- 0002: aggregates and views for BI. See schema/README.md.
--
-- The agg_* tables are never fed by a materialized view: a view fed on insert
-- would count a re-inserted window twice. After each loaded window the product
-- recomputes every day the window touches from email_responses (which holds
-- each response once) and inserts the result with a higher version
-- (Store.RefreshAggregates). The views below read the newest version of each
-- row with argMax, so their numbers never depend on a merge having run.
-- The contacts view is made in Go: its columns follow the configured contact fields.

CREATE TABLE IF NOT EXISTS {{db}}.agg_campaign_daily{{on_cluster}} (
    account           String,
    day               Date,
    campaign_id       UInt64,
    opens             UInt64,
    unique_openers    UInt64,
    clicks            UInt64,
    unique_clickers   UInt64,
    responses         UInt64,
    campaign_title    String,
    campaign_category String,
    version_name      String,
    last_event_time   DateTime('UTC'),
    version           UInt64
) ENGINE = {{engine:ReplacingMergeTree(version)}}
PARTITION BY toYYYYMM(day)
ORDER BY (account, day, campaign_id);

CREATE TABLE IF NOT EXISTS {{db}}.agg_link_daily{{on_cluster}} (
    account         String,
    day             Date,
    url             String,
    clicks          UInt64,
    unique_clickers UInt64,
    link_title      String,
    link_category   String,
    last_event_time DateTime('UTC'),
    version         UInt64
) ENGINE = {{engine:ReplacingMergeTree(version)}}
PARTITION BY toYYYYMM(day)
ORDER BY (account, day, url);

CREATE TABLE IF NOT EXISTS {{db}}.agg_hourly{{on_cluster}} (
    account   String,
    hour      DateTime('UTC'),
    day       Date,
    opens     UInt64,
    clicks    UInt64,
    responses UInt64,
    version   UInt64
) ENGINE = {{engine:ReplacingMergeTree(version)}}
PARTITION BY toYYYYMM(day)
ORDER BY (account, hour);

-- Aggregates for the responses loaded before this migration, version 1: any
-- later recomputation (version = nanoseconds) supersedes them. Re-running it
-- after an interruption inserts the same numbers again, which the views collapse.
INSERT INTO {{db}}.agg_campaign_daily (account, day, campaign_id, opens, unique_openers, clicks, unique_clickers, responses, campaign_title, campaign_category, version_name, last_event_time, version)
SELECT account, event_date, ifNull(campaign_id, 0) AS cid,
       countIf(source = 'open'), uniqExactIf(user_id, source = 'open'),
       countIf(source = 'click'), uniqExactIf(user_id, source = 'click'), count(),
       argMax(campaign_title, event_time), argMax(campaign_category, event_time), argMax(version_name, event_time),
       max(event_time), 1
FROM {{db}}.email_responses
GROUP BY account, event_date, cid;

INSERT INTO {{db}}.agg_link_daily (account, day, url, clicks, unique_clickers, link_title, link_category, last_event_time, version)
SELECT account, event_date, url, count(), uniqExact(user_id),
       argMax(link_title, event_time), argMax(link_category, event_time), max(event_time), 1
FROM {{db}}.email_responses
WHERE source = 'click' AND url != ''
GROUP BY account, event_date, url;

INSERT INTO {{db}}.agg_hourly (account, hour, day, opens, clicks, responses, version)
SELECT account, toStartOfHour(event_time) AS h, toDate(h),
       countIf(source = 'open'), countIf(source = 'click'), count(), 1
FROM {{db}}.email_responses
GROUP BY account, h;

CREATE VIEW IF NOT EXISTS {{db}}.campaign_daily{{on_cluster}} AS
SELECT account, day, campaign_id, opens, unique_openers, clicks, unique_clickers, responses,
       if(unique_openers = 0, 0, unique_clickers / unique_openers) AS click_to_open_rate
FROM (
    SELECT account, day, campaign_id,
           argMax(opens, version) AS opens, argMax(unique_openers, version) AS unique_openers,
           argMax(clicks, version) AS clicks, argMax(unique_clickers, version) AS unique_clickers,
           argMax(responses, version) AS responses
    FROM {{db}}.agg_campaign_daily
    GROUP BY account, day, campaign_id
);

CREATE VIEW IF NOT EXISTS {{db}}.link_daily{{on_cluster}} AS
SELECT account, day, url,
       argMax(clicks, version) AS clicks, argMax(unique_clickers, version) AS unique_clickers
FROM {{db}}.agg_link_daily
GROUP BY account, day, url;

CREATE VIEW IF NOT EXISTS {{db}}.hourly{{on_cluster}} AS
SELECT account, hour, day,
       argMax(opens, version) AS opens, argMax(clicks, version) AS clicks, argMax(responses, version) AS responses
FROM {{db}}.agg_hourly
GROUP BY account, hour, day;

-- Latest values: the row of the newest day (and, within it, the newest
-- recomputation) wins. Read from the aggregates so BI need not scan the facts.
CREATE VIEW IF NOT EXISTS {{db}}.campaigns{{on_cluster}} AS
SELECT account, campaign_id,
       argMax(campaign_title, (last_event_time, version)) AS title,
       argMax(campaign_category, (last_event_time, version)) AS category,
       argMax(version_name, (last_event_time, version)) AS version_name,
       min(day) AS first_day, max(day) AS last_day
FROM {{db}}.agg_campaign_daily
GROUP BY account, campaign_id;

CREATE VIEW IF NOT EXISTS {{db}}.links{{on_cluster}} AS
SELECT account, url,
       argMax(link_title, (last_event_time, version)) AS title,
       argMax(link_category, (last_event_time, version)) AS category,
       min(day) AS first_day, max(day) AS last_day
FROM {{db}}.agg_link_daily
GROUP BY account, url;
