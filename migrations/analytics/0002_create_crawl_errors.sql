-- Failed fetches, kept for error-rate dashboards.
CREATE TABLE crawl_errors (
    id          INTEGER PRIMARY KEY,
    url         TEXT    NOT NULL,
    domain      TEXT    NOT NULL,
    http_status INTEGER,
    error       TEXT    NOT NULL,
    occurred_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE INDEX crawl_errors_domain_time ON crawl_errors (domain, occurred_at);
