//! One view of every cloud: `ls`, `down`, `cost` and `reap` run the same step on every
//! configured cloud at once, and a cloud that fails is a warning (with its hint) beside
//! the others' results, then a non-zero exit -- never a reason to hide the rest.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use herd_core::{tags, Cloud, Error, ErrorKind, Instance, Launcher};

use crate::context::Context;

/// A cloud whose step failed, and why.
pub type Failure = (Cloud, anyhow::Error);

/// Launchers for `clouds`; a cloud whose launcher cannot be built is a failure, not an
/// error for the whole command.
pub fn launchers<'a>(ctx: &'a Context, clouds: &[Cloud]) -> (Vec<(Cloud, &'a Launcher)>, Vec<Failure>) {
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for &c in clouds {
        match ctx.launcher_for(c) {
            Ok(l) => ok.push((c, l)),
            Err(e) => failed.push((c, e.into())),
        }
    }
    (ok, failed)
}

/// Polls every future on this task until all are done, outputs in input order: the
/// clouds' calls overlap without needing `Send` or `'static` futures.
pub async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in futures.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *slot = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

/// Runs `step` on every launcher concurrently; successes and failures apart.
pub async fn each<'a, T, F, Fut>(launchers: &[(Cloud, &'a Launcher)], step: F) -> (Vec<(Cloud, T)>, Vec<Failure>)
where
    F: Fn(Cloud, &'a Launcher) -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let results = join_all(
        launchers
            .iter()
            .map(|(c, l)| {
                let fut = step(*c, l);
                let c = *c;
                async move { (c, fut.await) }
            })
            .collect(),
    )
    .await;
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for (c, r) in results {
        match r {
            Ok(v) => ok.push((c, v)),
            Err(e) => failed.push((c, e)),
        }
    }
    (ok, failed)
}

/// Each failure as a warning on stderr, with its causes and hint.
pub fn warn(ctx: &Context, failures: &[Failure]) {
    for (cloud, e) in failures {
        ctx.printer.warn_error(&format!("{cloud}"), e);
    }
}

/// The error a command ends with when some clouds failed: what was shown is only the
/// rest. `None` when nothing failed.
pub fn incomplete(failures: &[Failure], what: &str) -> Option<anyhow::Error> {
    if failures.is_empty() {
        return None;
    }
    let names: Vec<String> = failures.iter().map(|(c, _)| c.to_string()).collect();
    Some(
        Error::new(
            ErrorKind::Unavailable,
            format!(
                "{what} is incomplete: {} failed (see the warning above)",
                names.join(", ")
            ),
        )
        .with_hint("fix what the warning says and run the command again; the other clouds' results are above")
        .into(),
    )
}

/// Instances an answer returned that are not the caller's, which nothing may touch:
/// the cloud's filters are not trusted, the tags in the answer are.
pub fn foreign<'a>(owner: &str, instances: &'a [Instance]) -> Vec<&'a Instance> {
    let me = tags::sanitize_value(owner);
    instances
        .iter()
        .filter(|i| i.tag(tags::OWNER) != Some(me.as_str()))
        .collect()
}

/// Keeps the caller's instances, warning once about any others the answer held.
pub fn keep_mine(ctx: &Context, cloud: Cloud, instances: Vec<Instance>) -> Vec<Instance> {
    let others: Vec<String> = foreign(ctx.owner(), &instances).iter().map(|i| whose(i)).collect();
    if !others.is_empty() {
        ctx.printer.warn(format!(
            "{cloud} answered with {} instance(s) that are not yours, left alone: {}",
            others.len(),
            others.join(", ")
        ));
    }
    let me = tags::sanitize_value(ctx.owner());
    instances
        .into_iter()
        .filter(|i| i.tag(tags::OWNER) == Some(me.as_str()))
        .collect()
}

/// `i-1 (owner bob)`, `i-2 (no herd-owner tag: not started by herd)`.
pub fn whose(i: &Instance) -> String {
    match i.tag(tags::OWNER) {
        Some(o) => format!("{} (owner {o})", i.id),
        None => format!("{} (no herd-owner tag: not started by herd)", i.id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_all_keeps_order_and_overlaps() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // Each future waits for all three to have started: run one after the other they
        // never would, and the timeout fails the test instead of hanging it.
        let barrier = tokio::sync::Barrier::new(3);
        let out = rt.block_on(async {
            let all = join_all(
                [30u64, 10, 20]
                    .into_iter()
                    .map(|n| {
                        let barrier = &barrier;
                        async move {
                            barrier.wait().await;
                            n
                        }
                    })
                    .collect(),
            );
            tokio::time::timeout(std::time::Duration::from_secs(10), all).await
        });
        assert_eq!(out.expect("the futures overlap"), [30, 10, 20]);
    }

    #[test]
    fn foreign_is_decided_by_the_answers_tags() {
        let at = chrono::Utc::now();
        let new = |id: &str| {
            let launch = herd_core::LaunchId::new("l-test").unwrap();
            Instance::new(
                id,
                Cloud::Aws,
                "us-east-1",
                "us-east-1a",
                "t3.micro",
                launch,
                at,
                at,
                herd_core::Money::ZERO,
            )
        };
        let mut mine = new("i-1");
        mine.tags.insert(tags::OWNER.into(), "alice".into());
        let mut bobs = new("i-2");
        bobs.tags.insert(tags::OWNER.into(), "bob".into());
        let untagged = new("i-3");
        let all = [mine, bobs, untagged];
        let f: Vec<&str> = foreign("Alice", &all).iter().map(|i| i.id.as_str()).collect();
        assert_eq!(f, ["i-2", "i-3"]);
        assert_eq!(whose(&all[1]), "i-2 (owner bob)");
        assert!(whose(&all[2]).contains("not started by herd"));
    }
}
