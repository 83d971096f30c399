-- Re-crawl scheduling: which pages to fetch first, and the server's
-- Last-Modified header to skip unchanged pages.
ALTER TABLE crawled_pages ADD COLUMN crawl_priority INTEGER DEFAULT 1;
ALTER TABLE crawled_pages ADD COLUMN last_modified TIMESTAMP;

CREATE INDEX crawled_pages_priority ON crawled_pages (crawl_priority DESC, fetched_at);
