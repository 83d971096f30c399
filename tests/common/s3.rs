//! A real S3 server on 127.0.0.1 for the offsite tests: `s3s` over a
//! directory (`s3s-fs`), checking SigV4 signatures against one key pair,
//! run on its own tokio runtime inside the test process.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;

/// The access key id the test server accepts.
pub const KEY_ID: &str = "litewarden-test";
/// The secret key the test server accepts.
pub const SECRET: &str = "s3cr3t-test-key-9f2a7c";
/// The bucket the tests use.
pub const BUCKET: &str = "backups";

/// A running S3 server; stopped (every connection cut) when dropped.
pub struct S3Server {
    pub addr: SocketAddr,
    root: PathBuf,
    runtime: Option<tokio::runtime::Runtime>,
    requests: Arc<Mutex<BTreeMap<&'static str, u64>>>,
    parts: Arc<AtomicUsize>,
}

/// The kind of S3 request `request` is, as billed: `LIST`, `GET`, `HEAD`,
/// `PUT` (objects and parts), `POST` (multipart create and complete),
/// `DELETE`.
fn kind<B>(request: &hyper::Request<B>) -> &'static str {
    let query = request.uri().query().unwrap_or("");
    match request.method().as_str() {
        "GET"
            if query.contains("list-type")
                || request.uri().path().trim_matches('/').split('/').count() == 1 =>
        {
            "LIST"
        }
        "GET" => "GET",
        "HEAD" => "HEAD",
        "PUT" => "PUT",
        "POST" => "POST",
        "DELETE" => "DELETE",
        _ => "OTHER",
    }
}

impl S3Server {
    /// Starts a server storing its objects under `root` (with the test
    /// bucket created), on a free port.
    pub fn start(root: &Path) -> Self {
        std::fs::create_dir_all(root.join(BUCKET)).expect("create the bucket directory");
        Self::start_at(root, "127.0.0.1:0".parse().unwrap())
    }

    /// Starts a server on `addr` (a restart on the port a stopped one had).
    pub fn start_at(root: &Path, addr: SocketAddr) -> Self {
        Self::start_with(root, addr, None)
    }

    /// Starts a server whose answer to each multipart part comes `delay`
    /// late (an upload a test can interrupt).
    pub fn start_slow_parts(root: &Path, delay: Duration) -> Self {
        std::fs::create_dir_all(root.join(BUCKET)).expect("create the bucket directory");
        Self::start_with(root, "127.0.0.1:0".parse().unwrap(), Some(delay))
    }

    fn start_with(root: &Path, addr: SocketAddr, part_delay: Option<Duration>) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(addr))
            .expect("bind the S3 test server");
        let addr = listener.local_addr().unwrap();
        let fs = s3s_fs::FileSystem::new(root).expect("the s3s-fs root");
        let mut builder = S3ServiceBuilder::new(fs);
        builder.set_auth(SimpleAuth::from_single(KEY_ID, SECRET));
        let service = builder.build();
        let requests: Arc<Mutex<BTreeMap<&'static str, u64>>> = Arc::default();
        let parts = Arc::new(AtomicUsize::new(0));
        let (counted, seen) = (Arc::clone(&requests), Arc::clone(&parts));
        runtime.spawn(async move {
            let http = ConnBuilder::new(TokioExecutor::new());
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let (service, counted, seen) =
                    (service.clone(), Arc::clone(&counted), Arc::clone(&seen));
                let wrapped = hyper::service::service_fn(
                    move |request: hyper::Request<hyper::body::Incoming>| {
                        *counted.lock().unwrap().entry(kind(&request)).or_default() += 1;
                        let part = request.uri().query().unwrap_or("").contains("partNumber=");
                        let (service, seen) = (service.clone(), Arc::clone(&seen));
                        async move {
                            if part {
                                seen.fetch_add(1, Ordering::SeqCst);
                                if let Some(delay) = part_delay {
                                    tokio::time::sleep(delay).await;
                                }
                            }
                            hyper::service::Service::call(&service, request).await
                        }
                    },
                );
                let connection = http
                    .serve_connection(TokioIo::new(socket), wrapped)
                    .into_owned();
                tokio::spawn(async move {
                    let _ = connection.await;
                });
            }
        });
        S3Server {
            addr,
            root: root.to_path_buf(),
            runtime: Some(runtime),
            requests,
            parts,
        }
    }

    /// The requests served so far, by kind.
    pub fn requests(&self) -> BTreeMap<&'static str, u64> {
        self.requests.lock().unwrap().clone()
    }

    /// Multipart parts received so far.
    pub fn parts_received(&self) -> usize {
        self.parts.load(Ordering::SeqCst)
    }

    /// The endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Where the object `key` of the bucket is stored on disk.
    pub fn object_path(&self, key: &str) -> PathBuf {
        self.root.join(BUCKET).join(key)
    }

    /// Stops the server: its port refuses connections until a restart.
    pub fn stop(mut self) -> (PathBuf, SocketAddr) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
        (self.root.clone(), self.addr)
    }

    /// The `settings.offsite` block of a jobs.yaml for this server.
    pub fn offsite_yaml(&self, prefix: &str) -> String {
        format!(
            "  offsite:\n    url: s3://{BUCKET}/{prefix}\n    endpoint: {}\n    allow_http: true\n",
            self.endpoint()
        )
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The credentials environment for the binary.
pub fn credentials() -> [(&'static str, &'static str); 2] {
    [
        ("AWS_ACCESS_KEY_ID", KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", SECRET),
    ]
}
