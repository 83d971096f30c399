//! The page's charts as inline SVG, drawn on the server: a database's and
//! its `-wal` file's size over the last day, and a backup timeline.
//!
//! Owns the geometry only; every text in a chart (a tooltip) goes through
//! maud and is escaped.

use chrono::{DateTime, Utc};
use maud::{Markup, html};

use super::BackupMark;
use crate::state::samples::SizeSample;

const WIDTH: f64 = 320.0;
const HEIGHT: f64 = 72.0;

/// Points of a polyline: `values` over `times`, scaled to the chart.
fn points(
    times: &[DateTime<Utc>],
    values: &[u64],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    top: u64,
) -> String {
    let span = (to - from).num_milliseconds().max(1) as f64;
    times
        .iter()
        .zip(values)
        .map(|(at, value)| {
            let x = (at.signed_duration_since(from).num_milliseconds() as f64 / span) * WIDTH;
            let y = HEIGHT - (*value as f64 / top.max(1) as f64) * (HEIGHT - 4.0) - 2.0;
            format!("{x:.1},{y:.1}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The database and `-wal` sizes of `samples` up to `now`.
pub fn sizes(samples: &[SizeSample], now: DateTime<Utc>) -> Markup {
    let Some(first) = samples.first() else {
        return html! { p.empty { "No size samples yet (the health job records one per run)." } };
    };
    let times: Vec<_> = samples.iter().map(|s| s.at).collect();
    let db: Vec<u64> = samples.iter().map(|s| s.db_bytes).collect();
    let wal: Vec<u64> = samples.iter().map(|s| s.wal_bytes).collect();
    let top = db.iter().chain(&wal).copied().max().unwrap_or(1);
    let last = samples[samples.len() - 1];
    html! {
        svg.chart viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" preserveAspectRatio="none" {
            title { "database " (bytes(last.db_bytes)) ", WAL " (bytes(last.wal_bytes)) " (" (samples.len()) " samples since " (first.at.format("%Y-%m-%d %H:%M UTC")) ")" }
            polyline.db points=(points(&times, &db, first.at, now, top)) {}
            polyline.wal points=(points(&times, &wal, first.at, now, top)) {}
            @for (class, value) in [("db", last.db_bytes), ("wal", last.wal_bytes)] {
                @let at = points(&[last.at], &[value], first.at, now, top);
                @let (x, y) = at.split_once(',').unwrap_or(("0", "0"));
                circle class=(class) cx=(x) cy=(y) r="2.5" {}
            }
        }
        p.legend {
            span.db { "database " (bytes(last.db_bytes)) }
            " · "
            span.wal { "WAL " (bytes(last.wal_bytes)) }
        }
    }
}

/// One mark per backup in `marks` (oldest first) up to `now`.
pub fn timeline(marks: &[BackupMark], now: DateTime<Utc>) -> Markup {
    let Some(first) = marks.first() else {
        return html! { p.empty { "No backup yet." } };
    };
    let span = (now - first.at).num_milliseconds().max(1) as f64;
    html! {
        svg.timeline viewBox={ "0 0 " (WIDTH) " 24" } role="img" preserveAspectRatio="none" {
            line x1="0" y1="12" x2=(WIDTH) y2="12" {}
            @for mark in marks {
                @let x = 2.0 + (mark.at.signed_duration_since(first.at).num_milliseconds() as f64 / span) * (WIDTH - 4.0);
                @let class = if !mark.verified { "unverified" } else if mark.pinned { "pinned" } else if mark.offsite { "offsite" } else { "verified" };
                rect class=(class) x=(format!("{:.1}", x - 1.5)) y="3" width="3" height="18" {
                    title {
                        (mark.at.format("%Y-%m-%d %H:%M:%S UTC")) " · " (bytes(mark.size))
                        @if mark.verified { " · verified" } @else { " · not verified" }
                        @if mark.pinned { " · pinned" }
                        @if mark.offsite { " · offsite" }
                        @if !mark.kept_because.is_empty() { " · kept: " (mark.kept_because.join(", ")) }
                    }
                }
            }
        }
    }
}

/// `n` bytes for people, as the health checks show them.
pub fn bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_for_people() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 * 1024 * 1024 / 2), "1.50 MiB");
    }

    #[test]
    fn a_chart_spans_its_samples_up_to_now() {
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let samples = [
            SizeSample {
                at,
                db_bytes: 100,
                wal_bytes: 0,
            },
            SizeSample {
                at: at + chrono::TimeDelta::hours(1),
                db_bytes: 200,
                wal_bytes: 50,
            },
        ];
        let svg = sizes(&samples, at + chrono::TimeDelta::hours(2)).into_string();
        assert!(svg.contains(r#"points="0.0,36.0 160.0,2.0""#), "{svg}");
    }
}
