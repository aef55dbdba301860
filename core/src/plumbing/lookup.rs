//! The idempotency lookup: before a launch call is sent (again), find the instances an
//! earlier call with the same request id started, by the `herd-request` tag read from the
//! answer (only this request's and this owner's count, whatever the server matched).
//! That covers clouds and emulators that do not honour the idempotency key, and tells a
//! reused id with another spec (`herd-spec` differs: `Conflict`) from a retry.
//!
//! A lookup that finds only part of an earlier call (43 of 50) first gives the cloud a
//! moment (it may not show them all yet: the retry loop asks again), then starts the
//! missing ones under their own request token with the same tags, so the launch is whole;
//! if that fails, the part found is terminated before the error is returned: a launch is
//! never left half-running.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use crate::error::{Error, ErrorKind, Result};
use crate::provider::Provider;
use crate::request::LaunchRequest;
use crate::tags;
use crate::types::Instance;

/// What an earlier call with this request id left.
#[derive(Debug)]
pub enum Existing {
    None,
    /// All of it: the repeat returns them and starts nothing.
    All(Vec<Instance>),
    /// Fewer than asked (not visible yet, or lost): to complete or end.
    Partial(Vec<Instance>),
}

/// Sorts a lookup's answer (instances listed by the request tag) into what the earlier
/// call left: only instances whose own tags name this request id and `owner` count, each
/// once. A found instance with another spec fingerprint, or more than asked, is `Conflict`.
pub fn classify(req: &LaunchRequest, owner: &str, answer: impl IntoIterator<Item = Instance>) -> Result<Existing> {
    let owner = tags::sanitize_value(owner);
    let mut found: Vec<Instance> = Vec::new();
    for inst in answer {
        let ours = inst.tag(tags::REQUEST) == Some(req.launch_id.as_str())
            && inst.tag(tags::OWNER) == Some(owner.as_str())
            && !inst.id.is_empty();
        if ours && !found.iter().any(|f| f.id == inst.id) {
            found.push(inst);
        }
    }
    if found.is_empty() {
        return Ok(Existing::None);
    }
    let fp = req.fingerprint();
    if let Some(other) = found.iter().find(|i| i.tag(tags::SPEC) != Some(fp.as_str())) {
        return Err(Error::new(
            ErrorKind::Conflict,
            format!(
                "launch id {} was already used for another launch ({} x {} in {})",
                req.launch_id,
                found.len(),
                other.instance_type,
                other.region
            ),
        )
        .with_hint("use a new launch id, or repeat the first launch exactly"));
    }
    let want = req.count as usize;
    if found.len() > want {
        return Err(Error::new(
            ErrorKind::Conflict,
            format!(
                "launch id {} already has {} instances, more than the {} asked",
                req.launch_id,
                found.len(),
                req.count
            ),
        )
        .with_hint(format!(
            "`herd ls` shows them; `herd down --launch {}` ends them",
            req.launch_id
        )));
    }
    Ok(if found.len() == want {
        Existing::All(found)
    } else {
        Existing::Partial(found)
    })
}

/// The request token of the call that completes a launch found with `found` instances: its
/// own (a token names one call's whole answer), the same for every retry of it.
pub fn fill_token(req: &LaunchRequest, found: usize) -> String {
    let suffix = format!("-fill{found}");
    let id = req.launch_id.as_str();
    let keep = 64usize.saturating_sub(suffix.len()).min(id.len());
    format!("{}{suffix}", &id[..keep])
}

/// Launch ids whose earlier call is only partly visible, and how often seen so: a
/// backend keeps one for its lifetime.
#[derive(Debug)]
pub struct PartialLaunches {
    patience: u32,
    seen: Mutex<HashMap<String, u32>>,
}

impl PartialLaunches {
    /// Hands a partial launch back to the retry loop `patience` times (the cloud may not
    /// show every instance of a call yet) before the rest is started.
    pub fn new(patience: u32) -> Self {
        PartialLaunches {
            patience,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(Unavailable)` while patience lasts, `Ok` once the rest should be started.
    fn wait_or_complete(&self, req: &LaunchRequest, found: usize) -> Result<()> {
        let id = req.launch_id.to_string();
        let seen = {
            let mut m = self.seen.lock().expect("partial launches");
            let n = m.entry(id.clone()).or_insert(0);
            *n += 1;
            *n
        };
        if seen <= self.patience {
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!("launch {id} shows {found} of its {} instances so far", req.count),
            )
            .with_context("launch_id", id));
        }
        Ok(())
    }

    fn settled(&self, req: &LaunchRequest) {
        self.seen
            .lock()
            .expect("partial launches")
            .remove(req.launch_id.as_str());
    }
}

/// What one call is asked to start.
#[derive(Debug, Clone)]
pub struct Start {
    /// `req.count`, or the rest of a partial launch.
    pub count: u32,
    /// The request token base: the launch id, or [`fill_token`].
    pub token: String,
}

/// One launch call, made idempotent on the client's side: `lookup()` lists what carries
/// this request's tag (any answer: it is checked here), then `start` is called for what
/// is missing, if anything. The instances found and started are returned together. A
/// partial launch whose rest fails to start is ended through `provider.terminate`.
pub async fn launch_once<P, L, LF, S, SF>(
    provider: &P,
    owner: &str,
    req: &LaunchRequest,
    partial: &PartialLaunches,
    lookup: L,
    start: S,
) -> Result<Vec<Instance>>
where
    P: Provider + ?Sized,
    L: FnOnce() -> LF,
    LF: Future<Output = Result<Vec<Instance>>>,
    S: FnOnce(Start) -> SF,
    SF: Future<Output = Result<Vec<Instance>>>,
{
    let found = match classify(req, owner, lookup().await?)? {
        Existing::None => Vec::new(),
        Existing::All(found) => {
            partial.settled(req);
            return Ok(found);
        }
        Existing::Partial(found) => {
            partial.wait_or_complete(req, found.len())?;
            found
        }
    };
    let s = Start {
        count: req.count - found.len() as u32,
        token: if found.is_empty() {
            req.launch_id.to_string()
        } else {
            fill_token(req, found.len())
        },
    };
    match start(s).await {
        Ok(got) => {
            partial.settled(req);
            let mut all = found;
            all.extend(got);
            Ok(all)
        }
        Err(e) if found.is_empty() => Err(e),
        Err(e) => Err(end_partial(provider, req, &found, e).await),
    }
}

/// A partial launch that could not be completed is ended: its instances are terminated,
/// and the error says so (permanent: a retry would find it half-done again).
pub async fn end_partial<P: Provider + ?Sized>(
    provider: &P,
    req: &LaunchRequest,
    found: &[Instance],
    e: Error,
) -> Error {
    let ids: Vec<String> = found.iter().map(|i| i.id.clone()).collect();
    let what = format!(
        "launch {} had {} of {} instances and starting the other {} failed ({})",
        req.launch_id,
        found.len(),
        req.count,
        (req.count as usize).saturating_sub(found.len()),
        e.message()
    );
    let out = match provider.terminate(&ids).await {
        Ok(_) => Error::new(e.kind(), format!("{what}; the {} found were terminated", ids.len()))
            .with_hint("nothing of this launch is left running; launch again with a new id"),
        Err(t) => Error::new(
            e.kind(),
            format!(
                "{what}; terminating the {} found failed too ({})",
                ids.len(),
                t.message()
            ),
        )
        .with_hint(format!(
            "`herd down --launch {}` ends them; `herd ls` shows them",
            req.launch_id
        )),
    };
    let mut out = out
        .temporary(false)
        .with_context("launch_id", req.launch_id.to_string());
    for (k, v) in e.context() {
        out = out.with_context(k, v.clone());
    }
    out.with_source(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    use async_trait::async_trait;
    use chrono::Utc;

    use crate::{
        BillingRule, Capabilities, Catalog, Cloud, LaunchId, ListRequest, Money, ProviderInfo, TerminateOutcome,
        TerminateResult,
    };

    /// Records terminate calls; `fail` makes them fail.
    #[derive(Debug)]
    struct Ender {
        caps: Capabilities,
        catalog: Catalog,
        ended: Mutex<Vec<String>>,
        fail: bool,
    }

    impl Ender {
        fn new(fail: bool) -> Self {
            Ender {
                caps: Capabilities::none(BillingRule::AWS),
                catalog: Catalog::default(),
                ended: Mutex::new(Vec::new()),
                fail,
            }
        }
    }

    #[async_trait]
    impl Provider for Ender {
        fn info(&self) -> ProviderInfo {
            ProviderInfo::new(Cloud::Aws, "test", "r1")
        }
        fn capabilities(&self) -> &Capabilities {
            &self.caps
        }
        fn catalog(&self) -> &Catalog {
            &self.catalog
        }
        async fn launch(&self, _: &LaunchRequest) -> Result<Vec<Instance>> {
            unreachable!("launch_once never calls the provider's launch")
        }
        async fn terminate(&self, ids: &[String]) -> Result<Vec<TerminateResult>> {
            if self.fail {
                return Err(Error::new(ErrorKind::Unavailable, "terminate is down"));
            }
            self.ended.lock().unwrap().extend(ids.iter().cloned());
            Ok(ids
                .iter()
                .map(|i| TerminateResult::new(i, TerminateOutcome::Terminated))
                .collect())
        }
        async fn list(&self, _: &ListRequest) -> Result<Vec<Instance>> {
            Ok(Vec::new())
        }
    }

    fn req(count: u32) -> LaunchRequest {
        let mut r = LaunchRequest::new(
            LaunchId::new("l-abc").unwrap(),
            "t3.micro",
            "r1",
            count,
            Utc::now(),
            Money::ZERO,
        );
        r.tags.insert(tags::OWNER.into(), "ann".into());
        r
    }

    /// An instance as a previous call of `r` would have tagged it.
    fn started(r: &LaunchRequest, id: &str) -> Instance {
        let mut i = Instance::new(
            id,
            Cloud::Aws,
            "r1",
            "r1a",
            "t3.micro",
            r.launch_id.clone(),
            Utc::now(),
            Utc::now(),
            Money::ZERO,
        );
        i.tags = tags::request_tags(r);
        i
    }

    #[test]
    fn only_this_requests_and_this_owners_instances_count() {
        let r = req(2);
        let mut bobs = started(&r, "i-bob");
        bobs.tags.insert(tags::OWNER.into(), "bob".into());
        let mut other = started(&r, "i-other");
        other.tags.insert(tags::REQUEST.into(), "l-else".into());
        let nameless = started(&r, "");
        let got = classify(
            &r,
            "Ann",
            [bobs, other, nameless, started(&r, "i-1"), started(&r, "i-1")],
        )
        .unwrap();
        assert!(
            matches!(got, Existing::Partial(ref v) if v.len() == 1 && v[0].id == "i-1"),
            "{got:?}"
        );
        assert!(matches!(classify(&r, "ann", []).unwrap(), Existing::None));
        let all = classify(&r, "ann", [started(&r, "i-1"), started(&r, "i-2")]).unwrap();
        assert!(matches!(all, Existing::All(ref v) if v.len() == 2));
    }

    #[test]
    fn another_spec_or_too_many_is_a_conflict() {
        let r = req(1);
        let mut other_spec = started(&r, "i-1");
        other_spec.tags.insert(tags::SPEC.into(), "0000".into());
        let e = classify(&r, "ann", [other_spec]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict);
        assert!(e.message().contains("already used for another launch"), "{e}");
        let e = classify(&r, "ann", [started(&r, "i-1"), started(&r, "i-2")]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict);
        assert!(e.message().contains("more than the 1 asked"), "{e}");
    }

    #[test]
    fn fill_tokens_fit_and_differ_by_what_was_found() {
        let mut r = req(3);
        assert_eq!(fill_token(&r, 2), "l-abc-fill2");
        r.launch_id = LaunchId::new("x".repeat(64)).unwrap();
        assert_eq!(fill_token(&r, 12).len(), 64);
        assert_ne!(fill_token(&r, 12), fill_token(&r, 13));
    }

    #[tokio::test]
    async fn a_repeat_that_finds_everything_starts_nothing() {
        let r = req(2);
        let p = Ender::new(false);
        let got = launch_once(
            &p,
            "ann",
            &r,
            &PartialLaunches::new(2),
            || async { Ok(vec![started(&r, "i-1"), started(&r, "i-2")]) },
            |_| async { unreachable!("nothing to start") },
        )
        .await
        .unwrap();
        assert_eq!(got.len(), 2);
    }

    #[tokio::test]
    async fn a_partial_launch_waits_then_completes_under_its_own_token() {
        let r = req(3);
        let p = Ender::new(false);
        let partial = PartialLaunches::new(2);
        let starts = AtomicU32::new(0);
        let attempt = || {
            launch_once(
                &p,
                "ann",
                &r,
                &partial,
                || async { Ok(vec![started(&r, "i-1")]) },
                |s: Start| {
                    starts.fetch_add(1, Ordering::SeqCst);
                    let r = r.clone();
                    async move {
                        assert_eq!((s.count, s.token.as_str()), (2, "l-abc-fill1"));
                        Ok(vec![started(&r, "i-2"), started(&r, "i-3")])
                    }
                },
            )
        };
        for _ in 0..2 {
            let e = attempt().await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Unavailable);
            assert!(e.is_temporary());
            assert!(e.message().contains("shows 1 of its 3 instances"), "{e}");
        }
        assert_eq!(starts.load(Ordering::SeqCst), 0);
        let got = attempt().await.unwrap();
        let ids: Vec<&str> = got.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["i-1", "i-2", "i-3"]);
        assert!(p.ended.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_partial_launch_whose_rest_fails_is_ended() {
        let r = req(3);
        for fail_terminate in [false, true] {
            let p = Ender::new(fail_terminate);
            let e = launch_once(
                &p,
                "ann",
                &r,
                &PartialLaunches::new(0),
                || async { Ok(vec![started(&r, "i-1")]) },
                |_| async {
                    Err(Error::new(ErrorKind::QuotaExceeded, "VcpuLimitExceeded").with_context("region", "r1"))
                },
            )
            .await
            .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::QuotaExceeded);
            assert!(!e.is_temporary(), "a retry would find it half-done");
            assert!(e.message().contains("had 1 of 3 instances"), "{e}");
            assert_eq!(e.context_value("region"), Some("r1"));
            if fail_terminate {
                assert!(e.message().contains("failed too (terminate is down)"), "{e}");
                assert!(e.hint().unwrap().contains("herd down --launch l-abc"));
            } else {
                assert!(e.message().contains("the 1 found were terminated"), "{e}");
                assert_eq!(*p.ended.lock().unwrap(), ["i-1"]);
            }
        }
        // Nothing found and the start fails: the error as it was, nothing ended.
        let p = Ender::new(false);
        let e = launch_once(
            &p,
            "ann",
            &r,
            &PartialLaunches::new(0),
            || async { Ok(vec![]) },
            |_| async { Err(Error::new(ErrorKind::InsufficientCapacity, "full")) },
        )
        .await
        .unwrap_err();
        assert_eq!(e.message(), "full");
        assert!(p.ended.lock().unwrap().is_empty());
    }
}
