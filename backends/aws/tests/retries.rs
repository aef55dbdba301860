//! Where retries happen (docs/decisions/0006-aws-retries.md): the SDK sends each request
//! once, whatever the failure; herd's retry loop in the Launcher is the only one. A
//! mock EC2 on 127.0.0.1 counts the requests.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::quick_retry;
use herd_aws::testing::{Fault, FaultProxy};
use herd_aws::{AwsConfig, AwsProvider};
use herd_core::{ErrorKind, Launcher, ListRequest, Provider, RetryPolicy};

async fn mock(fault: Fault) -> (FaultProxy, Arc<AwsProvider>, tempfile::TempDir) {
    let proxy = FaultProxy::start(None, Arc::new(move |_, _| fault.clone())).await;
    let keys = tempfile::tempdir().unwrap();
    let cfg = AwsConfig::new("tester", keys.path())
        .region("us-east-1")
        .endpoint(proxy.endpoint())
        .attempt_timeout(Duration::from_millis(400));
    let p = Arc::new(
        AwsProvider::builder(cfg)
            .static_credentials("testing", "testing")
            .build(),
    );
    (proxy, p, keys)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_sends_each_request_once() {
    for (fault, kind) in [
        (Fault::fail(503, "RequestLimitExceeded"), ErrorKind::RateLimited),
        (Fault::fail(500, "InternalError"), ErrorKind::Unavailable),
        (Fault::fail(503, "SomethingNew"), ErrorKind::Unavailable),
        (Fault::Delay(Duration::from_secs(2)), ErrorKind::Timeout),
    ] {
        let (proxy, p, _keys) = mock(fault.clone()).await;
        let e = p.list(&ListRequest::new().region("us-east-1")).await.unwrap_err();
        assert_eq!(e.kind(), kind, "{fault:?}: {e}");
        assert!(e.is_temporary(), "{fault:?}");
        assert_eq!(proxy.calls("DescribeInstances").len(), 1, "{fault:?}: the SDK retried");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herds_loop_retries_temporary_errors_by_its_policy() {
    let (proxy, p, _keys) = mock(Fault::fail(500, "InternalError")).await;
    let policy = RetryPolicy {
        max_attempts: 4,
        ..quick_retry()
    };
    let launcher = Launcher::builder(p).retry(policy).build();
    let e = launcher
        .list(&ListRequest::new().region("us-east-1"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert_eq!(
        proxy.calls("DescribeInstances").len(),
        4,
        "exactly max_attempts requests"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_errors_are_sent_once_even_through_the_launcher() {
    let (proxy, p, _keys) = mock(Fault::fail(403, "UnauthorizedOperation")).await;
    let launcher = Launcher::builder(p).retry(quick_retry()).build();
    let e = launcher
        .list(&ListRequest::new().region("us-east-1"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    assert!(e.hint().is_some());
    assert_eq!(proxy.calls("DescribeInstances").len(), 1);
}
