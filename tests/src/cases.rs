//! The cases, grouped by operation. Each takes a fixture, builds its own fresh account,
//! cleans up what it launched, and returns an error that says what went wrong.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use chrono::{DateTime, Utc};
use herd_core::journal::{Journal, LaunchIntent};
use herd_core::request::*;
use herd_core::{tags, BillingRule, ErrorKind, Instance, InstanceState, LaunchId, Market, Money, PurchaseOption};

use crate::fixture::{cloud, Fixture, Options, Setup, TestCloud};

type R = anyhow::Result<()>;

const DEADLINE: Duration = Duration::from_secs(600);

fn spec(f: &dyn Fixture, count: u32) -> LaunchSpec {
    LaunchSpec::new(f.types().0, count)
        .region(f.region())
        .deadline(DEADLINE)
}

fn ids(instances: &[Instance]) -> BTreeSet<String> {
    instances.iter().map(|i| i.id.clone()).collect()
}

fn by_launch(id: &LaunchId) -> ListRequest {
    ListRequest::new().tag(tags::LAUNCH, id.as_str())
}

async fn cleanup(tc: &TestCloud, instances: &[Instance]) {
    let all: Vec<String> = instances.iter().map(|i| i.id.clone()).collect();
    if !all.is_empty() {
        let _ = tc.launcher.terminate(&all).await;
    }
}

fn expect_kind<T: std::fmt::Debug>(
    r: herd_core::Result<T>,
    kind: ErrorKind,
    what: &str,
) -> anyhow::Result<herd_core::Error> {
    match r {
        Ok(v) => bail!("{what}: expected a {kind} error, got success: {v:?}"),
        Err(e) if e.kind() == kind => Ok(e),
        Err(e) => bail!("{what}: expected a {kind} error, got {:?}: {e}", e.kind()),
    }
}

// ---- launch -----------------------------------------------------------------------------

pub async fn launch_then_list(f: &dyn Fixture) -> R {
    let tc = cloud(f, Setup::default()).await?;
    let r = tc.launcher.launch(spec(f, 3).tag("team", "conformance")).await?;
    ensure!(
        r.instances.len() == 3,
        "launched {} instances, asked for 3",
        r.instances.len()
    );
    let listed = tc.launcher.list(&by_launch(&r.launch_id)).await?;
    ensure!(
        ids(&listed) == ids(&r.instances),
        "list by launch tag returned {:?}, launched {:?}",
        ids(&listed),
        ids(&r.instances)
    );
    for i in &listed {
        ensure!(
            i.instance_type == f.types().0,
            "type {} != {}",
            i.instance_type,
            f.types().0
        );
        ensure!(i.region == f.region(), "region {} != {}", i.region, f.region());
        ensure!(
            i.state <= InstanceState::Running,
            "fresh instance {} is {}",
            i.id,
            i.state
        );
        ensure!(
            i.tag("team") == Some("conformance"),
            "user tag missing on {}: {:?}",
            i.id,
            i.tags
        );
        ensure!(i.purchase == PurchaseOption::OnDemand);
    }
    tc.launcher
        .terminate(&r.instances.iter().map(|i| i.id.clone()).collect::<Vec<_>>())
        .await?;
    let live = tc.launcher.list(&by_launch(&r.launch_id).live()).await?;
    ensure!(live.is_empty(), "{} instances still live after terminate", live.len());
    Ok(())
}

pub async fn launch_records_tags_price_and_deadline(f: &dyn Fixture) -> R {
    let tc = cloud(f, Setup::default()).await?;
    let quote = tc
        .launcher
        .quote(&QuoteRequest::new(f.types().0, f.region(), PurchaseOption::OnDemand))
        .await?;
    let before = f.clock().now();
    let r = tc.launcher.launch(spec(f, 2).cluster("conf-cluster")).await?;
    let after = f.clock().now();
    let listed = tc.launcher.list(&by_launch(&r.launch_id)).await?;
    ensure!(listed.len() == 2);
    for i in &listed {
        ensure!(
            i.hourly_price == quote.hourly,
            "price {} frozen, quote was {}",
            i.hourly_price,
            quote.hourly
        );
        ensure!(i.tag(tags::OWNER) == Some("conformance"), "owner tag: {:?}", i.tags);
        ensure!(
            i.tag(tags::CLUSTER) == Some("conf-cluster"),
            "cluster tag: {:?}",
            i.tags
        );
        ensure!(
            i.tag(tags::LAUNCH) == Some(r.launch_id.as_str()),
            "launch tag: {:?}",
            i.tags
        );
        ensure!(
            i.tag(tags::PRICE) == Some(quote.hourly.to_micros().to_string().as_str()),
            "price tag: {:?}",
            i.tags
        );
        let lo = before + chrono::Duration::from_std(DEADLINE)? - chrono::Duration::seconds(2);
        let hi = after + chrono::Duration::from_std(DEADLINE)? + chrono::Duration::seconds(2);
        ensure!(
            i.deadline >= lo && i.deadline <= hi,
            "deadline {} not within [{lo}, {hi}]",
            i.deadline
        );
        ensure!(
            i.tag(tags::DEADLINE) == Some(i.deadline.timestamp().to_string().as_str()),
            "deadline tag: {:?}",
            i.tags
        );
        ensure!(i.launch_id == r.launch_id);
    }
    cleanup(&tc, &listed).await;
    Ok(())
}

pub async fn idempotent_launch(f: &dyn Fixture) -> R {
    let tc = cloud(f, Setup::default()).await?;
    let id = LaunchId::new("conf-idem-1")?;
    let a = tc.launcher.launch(spec(f, 2).launch_id(id.clone())).await?;
    let b = tc.launcher.launch(spec(f, 2).launch_id(id.clone())).await?;
    ensure!(
        ids(&a.instances) == ids(&b.instances),
        "same launch id gave {:?} then {:?}",
        ids(&a.instances),
        ids(&b.instances)
    );
    let listed = tc.launcher.list(&by_launch(&id)).await?;
    ensure!(
        listed.len() == 2,
        "{} instances exist for one idempotent launch of 2",
        listed.len()
    );
    cleanup(&tc, &listed).await;
    Ok(())
}

pub async fn idempotent_launch_conflict(f: &dyn Fixture) -> R {
    let tc = cloud(f, Setup::default()).await?;
    let id = LaunchId::new("conf-idem-2")?;
    let a = tc.launcher.launch(spec(f, 2).launch_id(id.clone())).await?;
    let other = LaunchSpec::new(f.types().1, 2)
        .region(f.region())
        .deadline(DEADLINE)
        .launch_id(id.clone());
    expect_kind(
        tc.launcher.launch(other).await,
        ErrorKind::Conflict,
        "same launch id, other type",
    )?;
    let more = spec(f, 3).launch_id(id.clone());
    expect_kind(
        tc.launcher.launch(more).await,
        ErrorKind::Conflict,
        "same launch id, other count",
    )?;
    let listed = tc.launcher.list(&by_launch(&id)).await?;
    ensure!(
        ids(&listed) == ids(&a.instances),
        "a conflicting launch changed the instances: {:?}",
        ids(&listed)
    );
    cleanup(&tc, &listed).await;
    Ok(())
}

pub async fn large_launch_is_batched(f: &dyn Fixture) -> R {
    let setup = Setup {
        restrict: Some(Box::new(|c| c.max_launch_batch = 4)),
        ..Setup::default()
    };
    let tc = cloud(f, setup).await?;
    let before = tc.calls.launch_calls();
    let r = tc.launcher.launch(spec(f, 10)).await?;
    ensure!(
        r.instances.len() == 10 && ids(&r.instances).len() == 10,
        "got {} distinct instances",
        ids(&r.instances).len()
    );
    let calls = tc.calls.launch_calls() - before;
    ensure!(
        calls == 3,
        "10 instances with a batch limit of 4 took {calls} launch calls, expected 3"
    );
    let listed = tc.launcher.list(&by_launch(&r.launch_id)).await?;
    ensure!(listed.len() == 10, "listed {} of 10", listed.len());
    cleanup(&tc, &listed).await;
    Ok(())
}

// ---- terminate --------------------------------------------------------------------------

pub async fn terminate_is_idempotent(f: &dyn Fixture) -> R {
    let tc = cloud(f, Setup::default()).await?;
    let r = tc.launcher.launch(spec(f, 1)).await?;
    let id = vec![r.instances[0].id.clone()];
    let first = tc.launcher.terminate(&id).await?;
    ensure!(
        first.len() == 1 && first[0].outcome == TerminateOutcome::Terminated,
        "first terminate: {first:?}"
    );
    let again = tc.launcher.terminate(&id).await?;
    ensure!(
        again.len() == 1 && again[0].outcome == TerminateOutcome::AlreadyGone,
        "second terminate: {again:?}"
    );
    let unknown = tc.launcher.terminate(&["i-0000000000000dead".to_string()]).await?;
    ensure!(
        unknown.len() == 1 && unknown[0].outcome == TerminateOutcome::AlreadyGone,
        "unknown id: {unknown:?}"
    );
    let live = tc.launcher.list(&by_launch(&r.launch_id).live()).await?;
    ensure!(live.is_empty(), "still live: {live:?}");
    Ok(())
}

// ---- list -------------------------------------------------------------------------------

pub async fn list_by_tag_paginated(f: &dyn Fixture) -> R {
    let tc = cloud(f, Setup::default()).await?;
    let a = tc.launcher.launch(spec(f, 2).tag("group", "a")).await?;
    let b = tc.launcher.launch(spec(f, 1).tag("group", "b")).await?;
    let got = tc
        .launcher
        .list(&ListRequest::new().tag("group", "a").page_size(1))
        .await?;
    ensure!(
        got.len() == 2 && ids(&got) == ids(&a.instances),
        "group a with page size 1: {:?}",
        ids(&got)
    );
    let mine = tc
        .launcher
        .list(&ListRequest::new().tag(tags::OWNER, "conformance").page_size(1))
        .await?;
    ensure!(
        mine.len() == 3 && ids(&mine).len() == 3,
        "owner's instances with page size 1: {} ({} distinct)",
        mine.len(),
        ids(&mine).len()
    );
    let by_id = tc
        .launcher
        .list(&ListRequest::new().ids([b.instances[0].id.clone()]))
        .await?;
    ensure!(
        by_id.len() == 1 && by_id[0].id == b.instances[0].id,
        "list by id: {:?}",
        ids(&by_id)
    );
    cleanup(&tc, &mine).await;
    Ok(())
}

pub async fn states_never_go_backwards(f: &dyn Fixture) -> R {
    let tc = cloud(f, Setup::default()).await?;
    let r = tc.launcher.launch(spec(f, 2)).await?;
    let all: Vec<String> = r.instances.iter().map(|i| i.id.clone()).collect();
    let mut seen: std::collections::BTreeMap<String, Vec<InstanceState>> = Default::default();
    let step = f.boot_timeout() / 40;
    for round in 0..16 {
        if round == 8 {
            tc.launcher.terminate(&all[..1]).await?;
        }
        for i in tc.launcher.list(&ListRequest::new().ids(all.iter().cloned())).await? {
            seen.entry(i.id.clone()).or_default().push(i.state);
        }
        f.pass(step).await;
    }
    for (id, states) in &seen {
        ensure!(
            states.windows(2).all(|w| w[0] <= w[1]),
            "{id} went backwards: {states:?}"
        );
    }
    ensure!(
        seen.get(&all[0]).and_then(|s| s.last()) == Some(&InstanceState::Terminated),
        "terminated instance: {:?}",
        seen.get(&all[0])
    );
    ensure!(
        seen.get(&all[1]).is_some_and(|s| s.contains(&InstanceState::Running)),
        "second never ran: {:?}",
        seen.get(&all[1])
    );
    cleanup(&tc, &r.instances).await;
    Ok(())
}

// ---- validation before any call ---------------------------------------------------------

pub async fn unknown_type_suggests(f: &dyn Fixture) -> R {
    let tc = cloud(f, Setup::default()).await?;
    let good = f.types().0;
    let typo = &good[..good.len() - 1];
    let e = expect_kind(
        tc.launcher.launch(LaunchSpec::new(typo, 1).region(f.region())).await,
        ErrorKind::InvalidSpec,
        "typo'd type",
    )?;
    ensure!(
        e.suggestions().iter().any(|s| s == &good),
        "suggestions for `{typo}`: {:?}",
        e.suggestions()
    );
    ensure!(tc.api_calls() == 0, "{} API calls for an invalid spec", tc.api_calls());
    Ok(())
}

pub async fn unknown_region_suggests(f: &dyn Fixture) -> R {
    let tc = cloud(f, Setup::default()).await?;
    let good = f.region();
    let typo = format!("{}x", &good[..good.len() - 1]);
    let e = expect_kind(
        tc.launcher.launch(LaunchSpec::new(f.types().0, 1).region(&typo)).await,
        ErrorKind::InvalidSpec,
        "typo'd region",
    )?;
    ensure!(
        e.suggestions().iter().any(|s| s == &good),
        "suggestions for `{typo}`: {:?}",
        e.suggestions()
    );
    ensure!(
        tc.api_calls() == 0,
        "{} API calls for an invalid region",
        tc.api_calls()
    );
    Ok(())
}

pub async fn missing_capability_is_unsupported_before_any_call(f: &dyn Fixture) -> R {
    let setup = Setup {
        restrict: Some(Box::new(|c| {
            c.spot = false;
            c.exec = false;
        })),
        ..Setup::default()
    };
    let tc = cloud(f, setup).await?;
    let e = expect_kind(
        tc.launcher.launch(spec(f, 1).market(Market::Spot)).await,
        ErrorKind::Unsupported,
        "spot without spot",
    )?;
    ensure!(e.hint().is_some(), "no hint on {e}");
    expect_kind(
        tc.launcher.exec("i-0", &ExecRequest::new("true")).await,
        ErrorKind::Unsupported,
        "exec without exec",
    )?;
    ensure!(
        tc.api_calls() == 0,
        "{} API calls for unsupported requests",
        tc.api_calls()
    );

    let no_deadline = Setup {
        restrict: Some(Box::new(|c| c.deadline = herd_core::DeadlineEnforcement::None)),
        ..Setup::default()
    };
    let tc = cloud(f, no_deadline).await?;
    expect_kind(
        tc.launcher.launch(spec(f, 1)).await,
        ErrorKind::Unsupported,
        "no deadline enforcement",
    )?;
    ensure!(tc.api_calls() == 0);
    Ok(())
}

pub async fn bad_input_is_refused_before_any_call(f: &dyn Fixture) -> R {
    let tc = cloud(f, Setup::default()).await?;
    let cases: Vec<(&str, LaunchSpec)> = vec![
        ("count 0", spec(f, 0)),
        ("count absurd", spec(f, 1_000_000)),
        (
            "deadline under a second",
            spec(f, 1).deadline(Duration::from_millis(10)),
        ),
        (
            "deadline absurd",
            spec(f, 1).deadline(Duration::from_secs(400 * 86_400)),
        ),
        ("bad tag key", spec(f, 1).tag("Team", "x")),
        ("bad tag value", spec(f, 1).tag("team", "ML Research")),
        ("reserved tag", spec(f, 1).tag(tags::OWNER, "mallory")),
        ("bad cluster", spec(f, 1).cluster("My Cluster")),
    ];
    for (what, s) in cases {
        let e = expect_kind(tc.launcher.launch(s).await, ErrorKind::InvalidSpec, what)?;
        ensure!(!e.message().is_empty());
    }
    ensure!(tc.api_calls() == 0, "{} API calls for invalid input", tc.api_calls());
    Ok(())
}

// ---- budgets ----------------------------------------------------------------------------

/// A journal that only remembers reservations, for the per-day budget.
#[derive(Debug, Default)]
struct Reservations(Mutex<Vec<Money>>);

impl Journal for Reservations {
    fn committed_since(&self, _owner: &str, _since: DateTime<Utc>) -> herd_core::Result<Money> {
        Ok(self.0.lock().unwrap().iter().copied().sum())
    }
    fn launch_started(&self, intent: &LaunchIntent) -> herd_core::Result<()> {
        self.0.lock().unwrap().push(intent.reservation);
        Ok(())
    }
    fn launch_failed(&self, _: &LaunchId, _: &str) -> herd_core::Result<()> {
        Ok(())
    }
    fn instances_seen(&self, _: &[Instance]) -> herd_core::Result<()> {
        Ok(())
    }
    fn instances_ended(&self, _: &[String], _: DateTime<Utc>, _: &str) -> herd_core::Result<()> {
        Ok(())
    }
}

pub async fn budget_refuses_per_launch(f: &dyn Fixture) -> R {
    let mut setup = Setup::default();
    setup.guard.budget.per_launch = Money::parse_usd("0.0001")?;
    let tc = cloud(f, setup).await?;
    let e = expect_kind(
        tc.launcher.launch(spec(f, 2)).await,
        ErrorKind::BudgetExceeded,
        "over the per-launch budget",
    )?;
    ensure!(e.hint().is_some_and(|h| h.contains("budget")), "hint: {:?}", e.hint());
    ensure!(tc.api_calls() == 0, "{} API calls for a refused launch", tc.api_calls());
    Ok(())
}

pub async fn budget_refuses_per_day(f: &dyn Fixture) -> R {
    let probe = cloud(f, Setup::default()).await?;
    let one = probe
        .launcher
        .quote(&QuoteRequest::new(f.types().0, f.region(), PurchaseOption::OnDemand))
        .await?
        .for_duration(1, DEADLINE);
    let mut setup = Setup::default();
    setup.guard.budget.per_day = one.times(3.into());
    setup.journal = Some(Arc::new(Reservations::default()));
    let tc = cloud(f, setup).await?;
    let first = tc
        .launcher
        .launch(spec(f, 2))
        .await
        .context("first launch fits the day's budget")?;
    let e = expect_kind(
        tc.launcher.launch(spec(f, 2)).await,
        ErrorKind::BudgetExceeded,
        "over the daily budget",
    )?;
    ensure!(e.message().contains("daily"), "message: {e}");
    ensure!(
        tc.calls.launch_calls() == 1,
        "{} launch calls; the refused launch must not call",
        tc.calls.launch_calls()
    );
    cleanup(&tc, &first.instances).await;
    Ok(())
}

// ---- deadlines --------------------------------------------------------------------------

pub async fn deadline_honoured(f: &dyn Fixture) -> R {
    let tc = cloud(f, Setup::default()).await?;
    let Some(d) = f.observable_deadline() else {
        eprintln!(
            "{}: deadlines are not observable here; checked tags and records only",
            f.name()
        );
        return Ok(());
    };
    let r = tc
        .launcher
        .launch(spec(f, 1).deadline(d).keepalive(Duration::ZERO))
        .await?;
    let id = r.instances[0].id.clone();
    let deadline = r.instances[0].deadline;
    f.pass(d).await;
    let mut waited = Duration::ZERO;
    let inst = loop {
        let got = tc.launcher.list(&ListRequest::new().ids([id.clone()])).await?;
        let i = got.into_iter().next().context("instance vanished from list")?;
        if i.state == InstanceState::Terminated || waited > Duration::from_secs(15) {
            break i;
        }
        f.pass(Duration::from_millis(250)).await;
        waited += Duration::from_millis(250);
    };
    ensure!(
        inst.state == InstanceState::Terminated,
        "{id} is {} {:?} after its deadline",
        inst.state,
        inst.state_reason
    );
    ensure!(
        inst.state_reason.as_deref() == Some("deadline"),
        "reason: {:?}",
        inst.state_reason
    );
    let ended = inst.ended_at.context("terminated without an end time")?;
    ensure!(
        ended <= deadline + chrono::Duration::seconds(2),
        "ended at {ended}, deadline was {deadline}"
    );
    Ok(())
}

// ---- cost -------------------------------------------------------------------------------

pub async fn quotes_match_catalog_and_billing(f: &dyn Fixture) -> R {
    let tc = cloud(f, Setup::default()).await?;
    let cloud_id = tc.launcher.info().cloud;
    let rule = BillingRule::for_cloud(cloud_id);
    ensure!(
        tc.launcher.capabilities().billing == rule,
        "declared billing {:?} != {:?}",
        tc.launcher.capabilities().billing,
        rule
    );
    let offers: Vec<_> = tc
        .launcher
        .catalog()
        .offers()
        .iter()
        .filter(|o| o.cloud == cloud_id && o.hourly.is_some())
        .take(50)
        .cloned()
        .collect();
    ensure!(!offers.is_empty(), "the catalog has no priced offers for {cloud_id}");
    for o in offers {
        let q = tc
            .launcher
            .quote(&QuoteRequest::new(&o.instance_type, &o.region, o.purchase))
            .await?;
        ensure!(
            Some(q.hourly) == o.hourly,
            "quote {} != catalog {:?} for {} {}",
            q.hourly,
            o.hourly,
            o.instance_type,
            o.region
        );
        let short = q.for_duration(2, Duration::from_secs(5));
        let expected = q
            .hourly
            .times(2.into())
            .per_hour_for_seconds(rule.billable_seconds(Duration::from_secs(5)));
        let diff = (short.amount - expected.amount).abs();
        ensure!(
            diff < rust_decimal::Decimal::new(1, 9),
            "2 x 5 s billed {short}, rule says {expected}"
        );
        let hour = q.for_duration(1, Duration::from_secs(3600));
        ensure!(hour == q.hourly, "one hour billed {hour}, hourly is {}", q.hourly);
    }
    ensure!(tc.api_calls() == 0, "quotes made {} API calls", tc.api_calls());
    Ok(())
}

pub async fn accrued_cost_follows_billing_rule(f: &dyn Fixture) -> R {
    let tc = cloud(f, Setup::default()).await?;
    let r = tc.launcher.launch(spec(f, 1)).await?;
    f.pass(Duration::from_secs(2)).await;
    tc.launcher.terminate(&[r.instances[0].id.clone()]).await?;
    let i = tc
        .launcher
        .list(&ListRequest::new().ids([r.instances[0].id.clone()]))
        .await?
        .into_iter()
        .next()
        .context("gone from list")?;
    let ended = i.ended_at.context("terminated instance has no end time")?;
    let rule = BillingRule::for_cloud(i.cloud);
    let expected = rule.charge(i.hourly_price, (ended - i.launched_at).to_std()?);
    let got = tc.launcher.accrued(&i, None, None);
    ensure!(got == expected, "accrued {got}, rule says {expected}");
    ensure!(
        got >= i.hourly_price.per_hour_for_seconds(rule.minimum.as_secs()),
        "below the minimum charge: {got}"
    );
    Ok(())
}

// ---- faults -----------------------------------------------------------------------------

pub async fn transient_errors_still_yield_exactly_n(f: &dyn Fixture) -> R {
    if !f.supports_faults() {
        eprintln!(
            "{}: cannot inject faults here; covered by the mock-server tests",
            f.name()
        );
        return Ok(());
    }
    let setup = Setup {
        opts: Options {
            transient_error_rate: 0.3,
        },
        ..Setup::default()
    };
    let tc = cloud(f, setup).await?;
    for round in 0..3 {
        let r = tc
            .launcher
            .launch(spec(f, 8))
            .await
            .with_context(|| format!("round {round}"))?;
        ensure!(
            r.instances.len() == 8 && ids(&r.instances).len() == 8,
            "round {round}: {} distinct",
            ids(&r.instances).len()
        );
        let listed = tc.launcher.list(&by_launch(&r.launch_id)).await?;
        ensure!(
            ids(&listed) == ids(&r.instances),
            "round {round}: {} exist for a launch of 8",
            listed.len()
        );
    }
    let (calls, _, transient, _) = tc.launcher.stats().snapshot();
    let (lcalls, _, ltransient, _) = tc.launcher.launch_stats().snapshot();
    ensure!(
        transient + ltransient > 0,
        "no fault was injected in {} calls",
        calls + lcalls
    );
    let mine = tc
        .launcher
        .list(&ListRequest::new().tag(tags::OWNER, "conformance"))
        .await?;
    ensure!(mine.len() == 24, "{} instances exist after 3 launches of 8", mine.len());
    tc.launcher
        .terminate(&mine.iter().map(|i| i.id.clone()).collect::<Vec<_>>())
        .await?;
    let live = tc
        .launcher
        .list(&ListRequest::new().tag(tags::OWNER, "conformance").live())
        .await?;
    ensure!(live.is_empty(), "{} still live", live.len());
    Ok(())
}

// ---- exec -------------------------------------------------------------------------------

pub async fn exec_runs_in_instance(f: &dyn Fixture) -> R {
    let tc = cloud(f, Setup::default()).await?;
    if !tc.launcher.capabilities().exec {
        eprintln!("{}: no exec capability", f.name());
        return Ok(());
    }
    let r = tc.launcher.launch(spec(f, 1)).await?;
    let id = r.instances[0].id.clone();
    tc.launcher
        .wait_until_running(std::slice::from_ref(&id), f.boot_timeout())
        .await?;
    let out = tc
        .launcher
        .exec(&id, &ExecRequest::new("echo hello; echo oops >&2; exit 3"))
        .await?;
    ensure!(out.exit_code == Some(3), "exit code {:?}", out.exit_code);
    ensure!(
        out.stdout == "hello\n" && out.stderr == "oops\n",
        "stdout {:?} stderr {:?}",
        out.stdout,
        out.stderr
    );
    cleanup(&tc, &r.instances).await;
    let gone = tc.launcher.exec(&id, &ExecRequest::new("true")).await;
    ensure!(gone.is_err(), "exec on a terminated instance succeeded: {gone:?}");
    Ok(())
}
