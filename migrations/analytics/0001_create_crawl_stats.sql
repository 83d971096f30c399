-- Daily crawl statistics per domain, rolled up by the crawler.
CREATE TABLE crawl_stats (
    day            TEXT    NOT NULL,
    domain         TEXT    NOT NULL,
    pages_fetched  INTEGER NOT NULL DEFAULT 0,
    pages_failed   INTEGER NOT NULL DEFAULT 0,
    bytes_fetched  INTEGER NOT NULL DEFAULT 0,
    avg_latency_ms REAL,
    PRIMARY KEY (day, domain)
);
