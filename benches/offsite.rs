//! Benchmark for issue #23: copies that leave the machine, against the
//! in-process S3 server of the tests (s3s + s3s-fs, SigV4 checked) on
//! 127.0.0.1, in one run:
//!
//! - upload of a backup (default 1 GiB, uncompressed) by litewarden's store
//!   (`Remote::put_file`: create-only, hashed while read, size checked after)
//!   against a plain `object_store` multipart put of the same file with the
//!   same client, part size and parts in flight (SHA-256 request checksums on
//!   in both, as litewarden sends them; the plain put without them is shown
//!   too). Target: litewarden ≥ 0.9× the plain put's throughput.
//! - restore of the compressed default backup from the remote
//!   (`litewarden restore --from remote:latest --to`, which downloads,
//!   checks the hash, decodes and fsyncs) against a plain download of the
//!   same object followed by `zstd -d` and `sync`. Target: ≤ 1.2×.
//! - the requests one daily backup costs at steady state (a small database
//!   with `keep_last: 5` on the remote, so every run also removes one), by
//!   kind, counted by the server.
//!
//! Paired rounds, medians. `LITEWARDEN_BENCH_MB` sets the database size
//! (default 1024), `LITEWARDEN_BENCH_ROUNDS` the rounds (default 3). Run
//! with `cargo bench --bench offsite`.

#[path = "crawler_db.rs"]
mod crawler_db;
#[allow(dead_code)]
#[path = "../tests/common/s3.rs"]
mod s3;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use litewarden::config::{Offsite, OffsiteUrl, PasswordSource, Retention};
use litewarden::store::{Key, Remote, Store, remote};
use object_store::aws::{AmazonS3, AmazonS3Builder, Checksum};
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStoreExt, WriteMultipart};
use s3::S3Server;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn run(command: &mut Command) -> String {
    let output = command.output().expect("run a command");
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn litewarden(project: &Path, args: &[&str]) -> String {
    run(Command::new(env!("CARGO_BIN_EXE_litewarden"))
        .args(args)
        .current_dir(project)
        .env("RUST_LOG", "error")
        .envs(s3::credentials()))
}

fn offsite(server: &S3Server, prefix: &str) -> Offsite {
    Offsite {
        url: OffsiteUrl::S3 {
            bucket: s3::BUCKET.into(),
            prefix: prefix.into(),
        },
        endpoint: Some(server.endpoint()),
        region: "us-east-1".into(),
        allow_http: true,
        access_key_id: PasswordSource::Env("AWS_ACCESS_KEY_ID".into()),
        secret_access_key: PasswordSource::Env("AWS_SECRET_ACCESS_KEY".into()),
        retention: Retention::default(),
        max_age_lag: Duration::from_secs(7200),
    }
}

/// A plain `object_store` client of `server` (optionally with SHA-256
/// request checksums, as litewarden's) and a runtime like the store's.
fn plain_client(server: &S3Server, checksums: bool) -> (Arc<AmazonS3>, tokio::runtime::Runtime) {
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(s3::BUCKET)
        .with_region("us-east-1")
        .with_access_key_id(s3::KEY_ID)
        .with_secret_access_key(s3::SECRET)
        .with_endpoint(server.endpoint())
        .with_client_options(ClientOptions::new().with_allow_http(true));
    if checksums {
        builder = builder.with_checksum_algorithm(Checksum::SHA256);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    (Arc::new(builder.build().unwrap()), runtime)
}

/// A plain multipart put of `file` with `object_store`, as litewarden's
/// client is set up (optionally without request checksums).
fn plain_put(server: &S3Server, file: &Path, name: &str, checksums: bool) {
    let (objects, runtime) = plain_client(server, checksums);
    runtime.block_on(async {
        let upload = objects
            .put_multipart(&ObjectPath::from(format!("plain/{name}")))
            .await
            .unwrap();
        let mut writer = WriteMultipart::new_with_chunk_size(upload, remote::PART_SIZE);
        let mut source = std::fs::File::open(file).unwrap();
        let mut buffer = vec![0u8; remote::PART_SIZE];
        loop {
            let read = std::io::Read::read(&mut source, &mut buffer).unwrap();
            if read == 0 {
                break;
            }
            writer
                .wait_for_capacity(remote::PARTS_IN_FLIGHT)
                .await
                .unwrap();
            writer.write(&buffer[..read]);
        }
        writer.finish().await.unwrap();
    });
}

/// A plain download of `key` under `prefix` to `to`.
fn plain_get(server: &S3Server, prefix: &str, key: &str, to: &Path) {
    let (objects, runtime) = plain_client(server, false);
    runtime.block_on(async {
        let got = objects
            .get(&ObjectPath::from(format!("{prefix}/{key}")))
            .await
            .unwrap();
        let mut out = std::io::BufWriter::new(std::fs::File::create(to).unwrap());
        let mut stream = got.into_stream();
        while let Some(chunk) = stream.next().await {
            std::io::Write::write_all(&mut out, &chunk.unwrap()).unwrap();
        }
        std::io::Write::flush(&mut out).unwrap();
    });
}

fn project(dir: &Path, db: &Path, server: &S3Server, prefix: &str, backup: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("jobs.yaml"),
        format!(
            "version: 1\nsettings:\n{}    retention: {{ keep_last: 5 }}\ndatabases:\n  app:\n    path: {}\n    backup: {{ {backup} retention: {{ keep_last: 5 }} }}\n",
            server.offsite_yaml(prefix),
            db.display()
        ),
    )
    .unwrap();
    dir.to_path_buf()
}

fn newest_key(project: &Path) -> String {
    let listed: serde_json::Value =
        serde_json::from_str(&litewarden(project, &["backups", "app", "--json"])).unwrap();
    listed["backups"][0]["backup"]["key"]
        .as_str()
        .unwrap()
        .to_string()
}

fn main() {
    let megabytes = env_number("LITEWARDEN_BENCH_MB", 1024);
    let rounds = env_number("LITEWARDEN_BENCH_ROUNDS", 3) as usize;
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    std::fs::create_dir_all(&data).unwrap();
    let db = data.join(format!("crawler-{megabytes}.db"));
    crawler_db::generate(&db, megabytes);
    let work = tempfile::tempdir_in(&data).unwrap();
    let server = S3Server::start(&work.path().join("s3"));

    println!("# offsite benchmark, {megabytes} MiB crawler database, {rounds} rounds");
    let plain_dir = project(
        &work.path().join("plain"),
        &db,
        &server,
        "plain",
        "compress: none,",
    );
    litewarden(&plain_dir, &["backup", "app"]);
    let key = newest_key(&plain_dir);
    let copy = plain_dir.join("backups").join(&key);
    let size = std::fs::metadata(&copy).unwrap().len();
    let store = Remote::open(
        &offsite(&server, "plain"),
        &|name| {
            s3::credentials()
                .iter()
                .find(|(variable, _)| *variable == name)
                .map(|(_, value)| value.to_string())
        },
        &plain_dir.join("backups"),
    )
    .unwrap();
    let (mut ours, mut plain, mut unchecked) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let started = Instant::now();
        store
            .put_file(
                &Key::new("app", &format!("app-2026120{round}T000000Z.db")),
                &copy,
            )
            .unwrap();
        ours.push(started.elapsed());
        let started = Instant::now();
        plain_put(&server, &copy, &format!("checked-{round}"), true);
        plain.push(started.elapsed());
        let started = Instant::now();
        plain_put(&server, &copy, &format!("unchecked-{round}"), false);
        unchecked.push(started.elapsed());
    }
    let rate = |d: Duration| size as f64 / d.as_secs_f64() / (1 << 20) as f64;
    let (ours, plain, unchecked) = (median(ours), median(plain), median(unchecked));
    println!(
        "upload {} MiB: litewarden {:.2}s ({:.0} MiB/s), plain object_store multipart {:.2}s ({:.0} MiB/s), plain without checksums {:.2}s ({:.0} MiB/s)",
        size >> 20,
        ours.as_secs_f64(),
        rate(ours),
        plain.as_secs_f64(),
        rate(plain),
        unchecked.as_secs_f64(),
        rate(unchecked)
    );
    let ratio = rate(ours) / rate(plain);
    println!(
        "  throughput ratio litewarden / plain: {ratio:.2} (target >= 0.90: {})",
        if ratio >= 0.9 { "met" } else { "MISSED" }
    );

    let zstd_dir = project(&work.path().join("zstd"), &db, &server, "zstd", "");
    litewarden(&zstd_dir, &["backup", "app"]);
    litewarden(&zstd_dir, &["offsite", "app"]);
    let key = newest_key(&zstd_dir);
    let (mut ours, mut peer) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let restored = work.path().join(format!("restored-{round}.db"));
        let started = Instant::now();
        litewarden(
            &zstd_dir,
            &[
                "restore",
                "app",
                "--from",
                "remote:latest",
                "--to",
                restored.to_str().unwrap(),
                "-y",
            ],
        );
        ours.push(started.elapsed());
        std::fs::remove_file(&restored).unwrap();
        let downloaded = work.path().join(format!("downloaded-{round}.db.zst"));
        let plain_out = work.path().join(format!("plain-{round}.db"));
        let started = Instant::now();
        plain_get(&server, "zstd", &key, &downloaded);
        run(Command::new("zstd")
            .args(["-d", "-q", "-f"])
            .arg(&downloaded)
            .arg("-o")
            .arg(&plain_out));
        run(Command::new("sync").arg(&plain_out));
        peer.push(started.elapsed());
        std::fs::remove_file(&downloaded).unwrap();
        std::fs::remove_file(&plain_out).unwrap();
    }
    let (ours, peer) = (median(ours), median(peer));
    let ratio = ours.as_secs_f64() / peer.as_secs_f64();
    println!(
        "restore from the remote: litewarden {:.2}s, download + zstd -d + sync {:.2}s: {ratio:.2}x (target <= 1.20: {})",
        ours.as_secs_f64(),
        peer.as_secs_f64(),
        if ratio <= 1.2 { "met" } else { "MISSED" }
    );

    let small = work.path().join("small.db");
    crawler_db::generate(&small, 4);
    let daily = project(&work.path().join("daily"), &small, &server, "daily", "");
    for day in 0..8 {
        let offset = format!("{day}d");
        let before = server.requests();
        run(Command::new(env!("CARGO_BIN_EXE_litewarden"))
            .args(["backup", "app"])
            .current_dir(&daily)
            .env("RUST_LOG", "error")
            .env("LITEWARDEN_CLOCK_OFFSET", &offset));
        run(Command::new(env!("CARGO_BIN_EXE_litewarden"))
            .args(["offsite", "app"])
            .current_dir(&daily)
            .env("RUST_LOG", "error")
            .env("LITEWARDEN_CLOCK_OFFSET", &offset)
            .envs(s3::credentials()));
        if day == 7 {
            let after = server.requests();
            let spent: Vec<String> = after
                .iter()
                .map(|(kind, n)| (kind, n - before.get(kind).copied().unwrap_or(0)))
                .filter(|(_, n)| *n > 0)
                .map(|(kind, n)| format!("{kind} {n}"))
                .collect();
            println!(
                "requests for one daily backup at steady state (4 MiB database, keep_last 5 on the remote, one copy removed): {}",
                spent.join(", ")
            );
        }
    }
}
