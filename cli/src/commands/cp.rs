//! `herd cp LOCAL... (ID|--cluster NAME|--launch ID)[:DEST]`: local files to one or every
//! selected instance, through each cloud's `exec` (the one channel every backend has):
//! each file travels base64-encoded in chunks (herd-sweep's shipping, as a sweep ships
//! its workload) into the folder commands run in, or DEST.

use herd_core::{Error, Launcher, Result};
use herd_sweep::spec::ShippedFile;

use super::target;
use crate::args::{CpArgs, TargetArgs};
use crate::clouds;
use crate::context::Context;

/// Files larger than this are refused: `cp` holds each in memory while it ships.
const MAX_FILE: u64 = 256 * 1024 * 1024;

/// Reads `paths` into shipped files named after their file names.
pub fn read_files(paths: &[std::path::PathBuf]) -> Result<Vec<ShippedFile>> {
    paths
        .iter()
        .map(|p| {
            let bad = |e: std::io::Error| {
                Error::invalid_spec(format!("cannot read {}: {e}", p.display()))
                    .with_hint("check the path; herd copies regular files, not folders")
            };
            let meta = std::fs::metadata(p).map_err(bad)?;
            if !meta.is_file() {
                return Err(Error::invalid_spec(format!("{} is not a regular file", p.display()))
                    .with_hint("pass the files themselves (a folder's files: `dir/*`)"));
            }
            if meta.len() > MAX_FILE {
                return Err(Error::invalid_spec(format!("{} is larger than 256 MiB", p.display()))
                    .with_hint("ship large data from object storage in the setup instead"));
            }
            let name = p
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| Error::invalid_spec(format!("{} has no usable file name", p.display())))?;
            use std::os::unix::fs::PermissionsExt;
            Ok(ShippedFile {
                path: name.to_string(),
                executable: meta.permissions().mode() & 0o111 != 0,
                bytes: std::fs::read(p).map_err(bad)?,
            })
        })
        .collect()
}

/// Ships `files` into instance `id` (under `dest` when given).
pub async fn ship(l: &Launcher, id: &str, files: &[ShippedFile], dest: Option<&str>) -> Result<u64> {
    let placed: Vec<ShippedFile> = files
        .iter()
        .map(|f| ShippedFile {
            path: match dest {
                Some(d) => format!("{}/{}", d.trim_end_matches('/'), f.path),
                None => f.path.clone(),
            },
            executable: f.executable,
            bytes: f.bytes.clone(),
        })
        .collect();
    for cmd in herd_sweep::ship::commands(&placed) {
        let out = l.exec(id, &herd_core::ExecRequest::new(cmd)).await?;
        if out.exit_code != Some(0) {
            return Err(Error::new(
                herd_core::ErrorKind::Unavailable,
                format!("copying files to {id} failed: {}", out.stderr.trim()),
            )
            .with_hint("check that the destination folder is writable and the disk has room"));
        }
    }
    Ok(files.iter().map(|f| f.bytes.len() as u64).sum())
}

pub fn run(ctx: &Context, a: &CpArgs) -> anyhow::Result<()> {
    let grouped = a.target.cluster.is_some() || a.target.launch_id.is_some();
    let (locals, id, dest): (&[String], Option<String>, Option<String>) = if grouped {
        (&a.paths[..], None, a.dest.clone())
    } else {
        let (last, locals) = a.paths.split_last().expect("clap requires one");
        if locals.is_empty() {
            return Err(
                Error::invalid_spec("name the local files, then the instance: herd cp FILE... ID[:DEST]").into(),
            );
        }
        let (id, dest) = match last.split_once(':') {
            Some((i, d)) if !d.is_empty() => (i.to_string(), Some(d.to_string())),
            Some((i, _)) => (i.to_string(), None),
            None => (last.clone(), a.dest.clone()),
        };
        (locals, Some(id), dest)
    };
    let paths: Vec<std::path::PathBuf> = locals.iter().map(std::path::PathBuf::from).collect();
    let files = read_files(&paths)?;
    let clouds_ = ctx.clouds(&[])?;
    let (launchers, failures) = clouds::launchers(ctx, &clouds_);
    clouds::warn(ctx, &failures);
    let target = TargetArgs {
        cluster: a.target.cluster.clone(),
        launch_id: a.target.launch_id.clone(),
    };
    ctx.block_on(async {
        let targets = target::select(ctx, &launchers, id.as_deref(), &target).await?;
        let work = targets.iter().map(|(l, i)| {
            let (files, dest) = (&files, dest.as_deref());
            async move { (i.id.clone(), ship(l, &i.id, files, dest).await) }
        });
        let mut failed = 0;
        for (id, r) in clouds::join_all(work.collect()).await {
            match r {
                Ok(bytes) => ctx
                    .printer
                    .note(format!("{id}: copied {} file(s), {bytes} bytes", files.len())),
                Err(e) => {
                    failed += 1;
                    ctx.printer.warn(format!("{id}: {e}"));
                }
            }
        }
        if failed > 0 {
            return Err(Error::new(
                herd_core::ErrorKind::Unavailable,
                format!("copying failed on {failed} instance(s)"),
            )
            .into());
        }
        Ok(())
    })?
}
