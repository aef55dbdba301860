//! The region fan-out: one call per region, all at once, answers in the order asked.
//! Regions are independent (a listing of 17 regions must not take 17 round trips in a
//! row), and a caller reads results by position, so the output never depends on which
//! region answered first. One region's failure fails the whole call and says which
//! region it was: a listing that silently dropped a region would hide instances that bill.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use crate::error::{Error, Result};

/// Runs `call(region)` for every region concurrently (on the caller's task: the futures
/// may borrow) and returns `(region, answer)` in the order of `regions`. On failure, the
/// first failed region in that order is the error, with `region` in its context and its
/// message; other regions that failed are named too.
pub async fn fan_out<T, F, Fut>(regions: impl IntoIterator<Item = String>, mut call: F) -> Result<Vec<(String, T)>>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let regions: Vec<String> = regions.into_iter().collect();
    let answers = join_all(regions.iter().cloned().map(&mut call).collect()).await;
    let mut out = Vec::with_capacity(regions.len());
    let mut failed: Vec<(String, Error)> = Vec::new();
    for (region, r) in regions.into_iter().zip(answers) {
        match r {
            Ok(v) => out.push((region, v)),
            Err(e) => failed.push((region, e)),
        }
    }
    if failed.is_empty() {
        return Ok(out);
    }
    let others: Vec<String> = failed.iter().skip(1).map(|(r, _)| r.clone()).collect();
    let (region, e) = failed.swap_remove(0);
    Err(in_region(e, &region, &others))
}

/// The error of one region: its message says where, unless it already does.
fn in_region(e: Error, region: &str, others: &[String]) -> Error {
    let also = match others.len() {
        0 => String::new(),
        _ => format!("; {} failed too", others.join(", ")),
    };
    let r = region.to_string();
    e.with_context("region", r.clone()).map_message(|m| {
        if m.contains(&r) {
            format!("{m}{also}")
        } else {
            format!("{m} (in {r}){also}")
        }
    })
}

/// Polls every future until all are done; results in input order. A wake re-polls the
/// unfinished ones: fan-outs are tens of regions, not thousands.
async fn join_all<Fut: Future>(futs: Vec<Fut>) -> Vec<Fut::Output> {
    let mut futs: Vec<Pin<Box<Fut>>> = futs.into_iter().map(Box::pin).collect();
    let mut done: Vec<Option<Fut::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in futs.iter_mut().zip(done.iter_mut()) {
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
    done.into_iter().map(|v| v.expect("every future finished")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use crate::ErrorKind;

    fn regions(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("r-{i}")).collect()
    }

    #[tokio::test]
    async fn answers_come_in_the_order_asked_whatever_finishes_first() {
        // Later regions answer first.
        let got = fan_out(regions(5), |r| async move {
            let i: u64 = r[2..].parse().unwrap();
            tokio::task::yield_now().await;
            for _ in 0..(5 - i) {
                tokio::task::yield_now().await;
            }
            Ok(i * 10)
        })
        .await
        .unwrap();
        let want: Vec<(String, u64)> = (0..5).map(|i| (format!("r-{i}"), i * 10)).collect();
        assert_eq!(got, want);
        assert!(fan_out(Vec::new(), |_| async { Ok(()) }).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn regions_run_at_once_not_one_after_another() {
        // Every call waits until all have started: run one by one, this never finishes.
        let started = Arc::new(AtomicUsize::new(0));
        let n = 4;
        let got = tokio::time::timeout(
            Duration::from_secs(30),
            fan_out(regions(n), |r| {
                let started = started.clone();
                async move {
                    started.fetch_add(1, Ordering::SeqCst);
                    while started.load(Ordering::SeqCst) < n {
                        tokio::task::yield_now().await;
                    }
                    Ok(r)
                }
            }),
        )
        .await
        .expect("the regions overlapped")
        .unwrap();
        assert_eq!(got.len(), n);
    }

    #[tokio::test]
    async fn a_failed_region_is_named_with_the_others_that_failed() {
        let e = fan_out(regions(4), |r| async move {
            match r.as_str() {
                "r-1" => Err(Error::new(ErrorKind::Unavailable, "connection reset")),
                "r-3" => Err(Error::new(ErrorKind::Unauthenticated, "AuthFailure in r-3")),
                _ => Ok(()),
            }
        })
        .await
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable, "the first failure in the order asked");
        assert_eq!(e.message(), "connection reset (in r-1); r-3 failed too");
        assert_eq!(e.context_value("region"), Some("r-1"));
        assert!(e.is_temporary());
        let e = fan_out(regions(4), |r| async move {
            if r == "r-3" {
                Err(Error::new(ErrorKind::Unauthenticated, "AuthFailure in r-3"))
            } else {
                Ok(())
            }
        })
        .await
        .unwrap_err();
        assert_eq!(e.message(), "AuthFailure in r-3", "not named twice");
    }
}
