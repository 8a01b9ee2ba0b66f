-- 0001: the fact table, its rejects, the window ledger and the lease table.
-- Every statement is idempotent (IF NOT EXISTS): DDL in ClickHouse is not
-- transactional, so a migration cut short is finished by running it again.
-- Types stay within what ClickHouse 18.16 accepts (no DateTime64, no
-- LowCardinality, no Date32). Contact columns are added later, per account
-- configuration, between link_category and invalid_utf8.

CREATE TABLE IF NOT EXISTS {{db}}.email_responses{{local}}{{on_cluster}} (
    account           String,
    event_time        DateTime('UTC'),
    event_date        Date DEFAULT toDate(event_time),
    user_id           UInt64,
    source            Enum8('other' = 0, 'open' = 1, 'click' = 2, 'unsubscribe' = 3, 'complaint' = 4, 'registration_form' = 5, 'tell_a_friend' = 6, 'contact_us' = 7, 'change_profile' = 8),
    source_raw        String,
    campaign_title    String,
    section_header    String,
    section_group     String,
    link_title        String,
    url               String,
    campaign_id       Nullable(UInt64),
    version_name      String,
    campaign_category String,
    link_category     String,
    invalid_utf8      UInt8,
    response_key      UInt64,
    export_id         UInt64,
    window_start      DateTime('UTC'),
    window_end        DateTime('UTC'),
    loaded_at         DateTime('UTC')
) ENGINE = {{engine:ReplacingMergeTree(loaded_at)}}
PARTITION BY toYYYYMM(event_time)
ORDER BY (account, event_date, response_key);

-- Cluster mode only (nothing on one server): email_responses is then a
-- Distributed table over the shards' email_responses_local, sharded by user_id.
{{distributed:email_responses:cityHash64(user_id)}};

CREATE TABLE IF NOT EXISTS {{db}}.email_responses_rejected{{on_cluster}} (
    account      String,
    window_start DateTime('UTC'),
    window_end   DateTime('UTC'),
    export_id    UInt64,
    line         UInt32,
    raw          String,
    reason       String,
    raw_key      UInt64,
    rejected_at  DateTime('UTC')
) ENGINE = {{engine:ReplacingMergeTree(rejected_at)}}
PARTITION BY toYYYYMM(window_start)
ORDER BY (account, window_start, raw_key);

CREATE TABLE IF NOT EXISTS {{db}}.etl_windows{{on_cluster}} (
    account       String,
    window_start  DateTime('UTC'),
    window_end    DateTime('UTC'),
    state         Enum8('planned' = 1, 'requested' = 2, 'ready' = 3, 'fetched' = 4, 'loaded' = 5, 'done' = 6, 'failed' = 7),
    export_id     UInt64,
    file_name     String,
    attempts      UInt32,
    rows_read     UInt64,
    rows_loaded   UInt64,
    rows_new      UInt64,
    rows_rejected UInt64,
    last_error    String,
    manual        UInt8,
    updated_at    DateTime('UTC'),
    version       UInt64
) ENGINE = {{engine:ReplacingMergeTree(version)}}
ORDER BY (account, window_start, window_end);

CREATE TABLE IF NOT EXISTS {{db}}.etl_leases{{on_cluster}} (
    account    String,
    holder     String,
    expires_at DateTime('UTC'),
    version    UInt64
) ENGINE = {{engine:ReplacingMergeTree(version)}}
ORDER BY account;
