//! Index advice (issue #25): the application's slow queries through
//! `live::Manager`, `advise` proposing an index the planner uses, and
//! `--write-migration` writing a migration that applies.

use std::time::{Duration, Instant};

use litewarden::config::{self, Environment};
use litewarden::live::{Manager, Options};

use crate::common::{Project, open};

const CONFIG: &str = "version: 1
settings: { state_dir: st, backup_dir: bk }
databases:
  app:
    path: app.db
    pragmas: { journal_mode: wal }
    migrations: { dir: migrations/app, apply: manual }
";

/// The application's manager of `app`: statements over 1 ms are slow.
fn manager(project: &Project) -> Manager {
    let loaded = config::load(&project.join("jobs.yaml"), &Environment::from_process()).unwrap();
    let options = Options {
        slow_query: Duration::from_millis(1),
        ..Options::default()
    };
    Manager::from_config(&loaded.config, "app", options).unwrap()
}

/// The median time of `runs` lookups by the unindexed column, through the
/// library as the application runs them.
fn median_lookup_ms(project: &Project, runs: u32) -> f64 {
    let db = manager(project);
    let mut times: Vec<f64> = (0..runs)
        .map(|n| {
            let started = Instant::now();
            let found: Vec<i64> = db
                .query(
                    "SELECT id FROM pages WHERE host = ?1",
                    [format!("host{}.example", n * 37 % 1000)],
                    |row| row.get(0),
                )
                .unwrap();
            assert_eq!(found.len(), 100);
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

#[test]
fn a_slow_lookup_gets_an_index_that_its_plan_uses_and_a_migration_that_applies() {
    let project = Project::with_config(CONFIG);
    std::fs::create_dir_all(project.join("migrations/app")).unwrap();
    assert_eq!(project.run(&["apply"]).code, 0);
    open(&project.join("app.db"))
        .execute_batch(
            "CREATE TABLE pages (id INTEGER PRIMARY KEY, url TEXT, host TEXT, status INTEGER);
             WITH RECURSIVE n(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM n WHERE v < 100000)
             INSERT INTO pages (url, host, status) SELECT 'https://x/' || v, 'host' || (v % 1000) || '.example', 200 FROM n;",
        )
        .unwrap();
    let before = median_lookup_ms(&project, 40);
    {
        let db = manager(&project);
        for host in ["host1.example", "host2.example"] {
            let urls: Vec<String> = db
                .query("SELECT url FROM pages WHERE host = ?1", [host], |row| {
                    row.get(0)
                })
                .unwrap();
            assert_eq!(urls.len(), 100);
        }
    }

    let advised = project.run(&["advise", "app", "--json"]);
    assert_eq!(advised.code, 0, "{}", advised.stderr);
    let advised: serde_json::Value = serde_json::from_str(&advised.stdout).unwrap();
    let lookup = advised["advice"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["sql"] == "SELECT id FROM pages WHERE host = ?")
        .unwrap_or_else(|| panic!("the lookup was not recorded: {advised}"));
    assert!(lookup["count"].as_u64().unwrap() >= 20, "{lookup}");
    assert_eq!(lookup["problems"][0], "scans every row of `pages`");
    assert_eq!(lookup["index"]["columns"], serde_json::json!(["host"]));
    let plan_with_it = lookup["index"]["plan"].to_string();
    assert!(
        plan_with_it.contains("INDEX idx_pages_host (host=?)"),
        "{plan_with_it}"
    );
    assert!(
        !open(&project.join("app.db"))
            .prepare("SELECT 1 FROM sqlite_schema WHERE name = 'idx_pages_host'")
            .unwrap()
            .exists([])
            .unwrap(),
        "advise created the index itself"
    );

    let text = project.run(&["advise", "app", "--write-migration"]);
    assert_eq!(text.code, 0, "{}", text.stderr);
    assert!(
        text.stdout.contains(
            "advice: CREATE INDEX IF NOT EXISTS \"idx_pages_host\" ON \"pages\" (\"host\");"
        ),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("0001_add_idx_pages_host.sql"),
        "{}",
        text.stdout
    );
    assert_eq!(
        text.stdout.matches("wrote ").count(),
        1,
        "two statements that want one index get one migration: {}",
        text.stdout
    );
    assert_eq!(
        crate::common::file_names(&project.join("migrations/app")),
        [
            "0001_add_idx_pages_host.down.sql",
            "0001_add_idx_pages_host.sql"
        ]
    );
    let applied = project.run(&["migrate", "up", "app"]);
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    let plan: String = open(&project.join("app.db"))
        .query_row(
            "EXPLAIN QUERY PLAN SELECT id FROM pages WHERE host = 'host1.example'",
            [],
            |row| row.get(3),
        )
        .unwrap();
    assert!(plan.contains("INDEX idx_pages_host (host=?)"), "{plan}");
    let after = median_lookup_ms(&project, 40);
    eprintln!("lookup p50: {before:.3} ms without the index, {after:.3} ms with it");
    crate::common::record(
        "advise",
        serde_json::json!({ "p50_ms_before": before, "p50_ms_after": after }),
    );
    let again = project.run(&["advise", "app"]);
    assert!(
        again.stdout.contains("INDEX idx_pages_host (host=?)")
            || again.stdout.contains("advice: none"),
        "{}",
        again.stdout
    );
}
