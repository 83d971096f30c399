-- Pages fetched by the crawler: one row per URL, updated on every re-crawl.
CREATE TABLE crawled_pages (
    id            INTEGER PRIMARY KEY,
    url           TEXT    NOT NULL UNIQUE,
    domain        TEXT    NOT NULL,
    status        TEXT    NOT NULL DEFAULT 'pending'
                          CHECK (status IN ('pending', 'fetched', 'failed', 'skipped')),
    http_status   INTEGER,
    title         TEXT,
    content_hash  TEXT,
    content_type  TEXT,
    content_length INTEGER,
    depth         INTEGER NOT NULL DEFAULT 0,
    error         TEXT,
    fetched_at    TEXT,
    created_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE INDEX crawled_pages_status_fetched ON crawled_pages (status, fetched_at);
CREATE INDEX crawled_pages_domain ON crawled_pages (domain);
CREATE INDEX crawled_pages_content_hash ON crawled_pages (content_hash);
