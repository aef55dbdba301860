//! moto's EC2 server on 127.0.0.1, one per test (or per fixture), stopped when dropped.
//! A test that needs it and lacks it fails with the install command, never skips.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;

/// What to run to install moto: `scripts/test.sh` does it into the workspace's .venv.
pub const MOTO_INSTALL: &str = "run scripts/test.sh, or \
     `python3 -m venv .venv && .venv/bin/pip install -r scripts/requirements-test.txt`";

/// Where moto_server is: in the workspace's .venv (scripts/test.sh makes it), or on PATH.
pub fn moto_binary() -> Result<PathBuf, String> {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/moto_server");
    if venv.is_file() {
        return Ok(venv);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("moto_server");
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    Err(format!("moto_server not found on PATH or in .venv/bin: {MOTO_INSTALL}"))
}

/// A moto server of its own, stopped when dropped.
#[derive(Debug)]
pub struct Moto {
    child: Child,
    addr: SocketAddr,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

impl Moto {
    /// Starts moto with instance-type and AMI validation on, and waits until it answers.
    pub async fn start() -> Result<Moto, String> {
        let bin = moto_binary()?;
        let mut last = String::new();
        // A port can be taken between probing and binding: a few tries, each bounded.
        for _ in 0..3 {
            let port = free_port();
            let child = Command::new(&bin)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .env("MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION", "true")
                .env("MOTO_ENABLE_AMI_VALIDATION", "true")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
            let mut moto = Moto {
                child,
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
            };
            match moto.wait_ready(Duration::from_secs(60)).await {
                Ok(()) => return Ok(moto),
                Err(e) => last = e,
            }
        }
        Err(format!("moto did not start: {last}"))
    }

    /// [`Moto::start`] for a synchronous test (a CLI test): panics with the install
    /// command when moto is missing.
    pub fn start_blocking() -> Moto {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        rt.block_on(Moto::start()).unwrap_or_else(|e| panic!("{e}"))
    }

    async fn wait_ready(&mut self, limit: Duration) -> Result<(), String> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("moto_server exited with {status}"));
            }
            if self.post("/moto-api/reset").await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!("no answer on {} within {limit:?}", self.addr))
    }

    async fn post(&self, path: &str) -> Result<(), String> {
        let req = hyper::Request::post(format!("{}{path}", self.endpoint()))
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let r = crate::proxy::http().request(req).await.map_err(|e| e.to_string())?;
        if r.status().is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {}", r.status()))
        }
    }

    /// Forgets every resource: a fresh account.
    pub async fn reset(&self) -> Result<(), String> {
        self.post("/moto-api/reset").await
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        // Our own child, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// moto with a fault proxy in front, and the runtime the proxy runs on, for synchronous
/// tests (the CLI's, whose own thread runs `herd` processes meanwhile).
#[derive(Debug)]
pub struct MotoBehindProxy {
    pub moto: Moto,
    pub proxy: crate::proxy::FaultProxy,
    // Last: the proxy's task ends before its runtime does.
    pub rt: tokio::runtime::Runtime,
}

impl MotoBehindProxy {
    /// Starts both; panics with the install command when moto is missing.
    pub fn start(rule: crate::proxy::Rule) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let moto = rt.block_on(Moto::start()).unwrap_or_else(|e| panic!("{e}"));
        let proxy = rt.block_on(crate::proxy::FaultProxy::start(Some(moto.endpoint()), rule));
        MotoBehindProxy { moto, proxy, rt }
    }

    /// The proxy's address: what herd is pointed at.
    pub fn endpoint(&self) -> String {
        self.proxy.endpoint()
    }
}
