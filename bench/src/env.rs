//! herd-env's speed (issue 14), with its peers:
//! - capture of a 200-package environment, process start included (`herd env capture
//!   --python`), against `pip freeze` on the same venv; target 1 s;
//! - bootstrap of a 50-package lock from a local index on 127.0.0.1 (herd-env's script
//!   run by `sh`, a fresh uv cache each time), against `uv venv` + `uv pip sync` of the
//!   same requirements run directly; target ratio 1.1;
//! - the cached second bootstrap (the environment found by its id), against the first;
//!   target 10 %.
//!
//! Needs `python3` (with venv) and `uv` on PATH (scripts/bench.sh: `.venv/bin`).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use herd_env::{IndexConfig, Lock, LockedPackage};

use super::{median, ms, run_once, verdict, Args};

const MKWHEEL: &str = include_str!("../../cli/tests/env_fixtures/mkwheel.py");
const INDEX: &str = include_str!("../../cli/tests/env_fixtures/index.py");
const SERVE: &str = include_str!("../../cli/tests/env_fixtures/serve.py");

fn check(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("{cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn bench(a: &Args) -> Result<()> {
    for (tool, install) in [
        ("python3", "apt-get install -y python3-venv"),
        ("uv", "python3 -m pip install uv"),
    ] {
        if Command::new(tool).arg("--version").output().is_err() {
            bail!("`{tool}` is needed on PATH for the env benchmark: {install}");
        }
    }
    let dir = tempfile::tempdir()?;
    capture(a, dir.path())?;
    bootstrap(a, dir.path())?;
    Ok(())
}

fn capture(a: &Args, dir: &Path) -> Result<()> {
    let venv = dir.join("venv200");
    check(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    let python = venv.join("bin/python");
    let site = check(Command::new(&python).args(["-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]))?;
    let site = Path::new(site.trim());
    for i in 0..200 {
        let name = format!("benchpkg{i:03}");
        let di = site.join(format!("{name}-1.{i}.dist-info"));
        std::fs::create_dir_all(&di)?;
        std::fs::write(
            di.join("METADATA"),
            format!("Metadata-Version: 2.1\nName: {name}\nVersion: 1.{i}\nSummary: bench\n\nlong description\n"),
        )?;
        std::fs::write(di.join("INSTALLER"), "pip\n")?;
        std::fs::write(di.join("RECORD"), "")?;
    }
    let runs = a.runs.clamp(3, 20);
    let time = |cmd: &dyn Fn() -> Command| -> Result<Duration> {
        run_once(&mut cmd())?;
        let mut v = Vec::new();
        for _ in 0..runs {
            v.push(run_once(&mut cmd())?.0);
        }
        Ok(median(v))
    };
    let out = dir.join("env200.lock");
    let herd = time(&|| {
        let mut c = Command::new(&a.herd);
        c.args(["env", "capture", "--python"])
            .arg(&python)
            .arg("-o")
            .arg(&out)
            .env("NO_COLOR", "1");
        c
    })?;
    let lock = Lock::read(&out)?;
    anyhow::ensure!(
        lock.packages.len() == 200,
        "captured {} packages, not 200",
        lock.packages.len()
    );
    let freeze = time(&|| {
        let mut c = Command::new(&python);
        c.args(["-m", "pip", "freeze", "--disable-pip-version-check"]);
        c
    })?;
    println!(
        "env      capture 200 packages        median {:>9} over {runs} runs | target 1000 ms ({:.3}x) | peer `pip freeze` {} ({:.3}x of peer)  {}",
        ms(herd),
        herd.as_secs_f64(),
        ms(freeze),
        herd.as_secs_f64() / freeze.as_secs_f64(),
        verdict(herd <= Duration::from_secs(1))
    );
    Ok(())
}

fn bootstrap(a: &Args, dir: &Path) -> Result<()> {
    // 50 wheels, a PEP 503 index over them, http.server on 127.0.0.1.
    std::fs::write(dir.join("mkwheel.py"), MKWHEEL)?;
    std::fs::write(dir.join("index.py"), INDEX)?;
    std::fs::write(dir.join("serve.py"), SERVE)?;
    let files = dir.join("index/files");
    let mut packages = Vec::new();
    for i in 0..50 {
        let name = format!("bootpkg{i:02}");
        check(
            Command::new("python3")
                .arg(dir.join("mkwheel.py"))
                .arg(&files)
                .args([&name, "1.0"]),
        )?;
        packages.push(LockedPackage::index(&name, "1.0"));
    }
    check(Command::new("python3").arg(dir.join("index.py")).arg(dir.join("index")))?;
    let mut server = Command::new("python3")
        .arg(dir.join("serve.py"))
        .arg(dir.join("index"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(server.stdout.take().context("no stdout")?).read_line(&mut line)?;
    let result = (|| -> Result<()> {
        let port: u16 = line
            .split("port ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|p| p.parse().ok())
            .with_context(|| format!("the index server said: {line}"))?;
        let url = format!("http://127.0.0.1:{port}/simple");
        let version = check(Command::new("python3").args(["-c", "import platform; print(platform.python_version())"]))?;
        let lock = Lock::new(version.trim(), "Linux", "x86_64", packages);
        let index = IndexConfig {
            index_url: Some(url.clone()),
            ..IndexConfig::default()
        };
        let script = herd_env::bootstrap_script(&lock, &index)?;
        let reqs = dir.join("requirements.txt");
        std::fs::write(
            &reqs,
            lock.packages
                .iter()
                .map(|p| p.requirement("") + "\n")
                .collect::<String>(),
        )?;
        let runs = a.runs.clamp(3, 9);
        let (mut herd, mut peer, mut cached) = (Vec::new(), Vec::new(), Vec::new());
        for r in 0..runs {
            // herd-env's bootstrap, a cold environment cache and a cold uv cache.
            let cache = dir.join(format!("envs-{r}"));
            let uv_cache = dir.join(format!("uvcache-h{r}"));
            let boot = |c: &mut Command| {
                c.arg("-c")
                    .arg(&script)
                    .env("HERD_ENV_CACHE", &cache)
                    .env("UV_CACHE_DIR", &uv_cache)
                    .env("HOME", dir);
            };
            // Alternate who goes first, so neither always gets the warmer machine.
            let mut herd_turn = || -> Result<()> {
                let mut c = Command::new("sh");
                boot(&mut c);
                herd.push(run_once(&mut c)?.0);
                // The same again: found by its id.
                let mut c = Command::new("sh");
                boot(&mut c);
                cached.push(run_once(&mut c)?.0);
                Ok(())
            };
            let mut peer_turn = || -> Result<()> {
                // The peer: uv run directly, same interpreter, index and a cold cache of its own.
                let venv = dir.join(format!("peer-{r}"));
                let uv_cache = dir.join(format!("uvcache-p{r}"));
                let start = Instant::now();
                check(
                    Command::new("uv")
                        .args(["venv", "--quiet", "--python", &lock.python])
                        .arg(&venv)
                        .env("UV_CACHE_DIR", &uv_cache),
                )?;
                check(
                    Command::new("uv")
                        .args(["pip", "sync", "--quiet", "--index-url", &url, "--python"])
                        .arg(venv.join("bin/python"))
                        .arg(&reqs)
                        .env("UV_CACHE_DIR", &uv_cache),
                )?;
                peer.push(start.elapsed());
                Ok(())
            };
            if r % 2 == 0 {
                herd_turn()?;
                peer_turn()?;
            } else {
                peer_turn()?;
                herd_turn()?;
            }
        }
        let (h, p, c) = (median(herd), median(peer), median(cached));
        let ratio = h.as_secs_f64() / p.as_secs_f64();
        println!(
            "env      bootstrap 50 packages       median {:>9} over {runs} runs | peer `uv venv && uv pip sync` {} ({ratio:.3}x of peer, target 1.10x)  {}",
            ms(h),
            ms(p),
            verdict(ratio <= 1.1)
        );
        let share = c.as_secs_f64() / h.as_secs_f64();
        println!(
            "env      cached second bootstrap     median {:>9} over {runs} runs | first {} ({:.1} % of it, target 10 %)  {}",
            ms(c),
            ms(h),
            100.0 * share,
            verdict(share <= 0.10)
        );
        Ok(())
    })();
    let _ = server.kill();
    let _ = server.wait();
    result
}
