//! Expands a spec's matrix through the catalog into cells (one cloud, region, type and
//! market each), drops the impossible ones with the reason, and prices the worst case:
//! on-demand price x per-cell timeout for every instance a cell may start.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use herd_core::catalog::glob_match;
use herd_core::suggest::did_you_mean;
use herd_core::{
    Arch, BillingRule, Cloud, Error, ErrorKind, InstanceType, Launcher, Market, Money, PurchaseOption, QuoteRequest,
    Result,
};
use serde::{Deserialize, Serialize};

use crate::spec::{GpuFilter, MetricSpec, Spec};

/// One point of the matrix: where and on what the workload runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Cell {
    /// Stable across runs of the same spec (so a resumed sweep finds its results) and a
    /// valid tag value.
    pub id: String,
    pub cloud: Cloud,
    pub region: String,
    pub zones: Vec<String>,
    pub instance_type: String,
    pub family: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub arch: Arch,
    pub gpu: Option<String>,
    pub market: Market,
    /// The price quoted for what is asked (spot for spot); the bill uses the price frozen
    /// on the instance at launch.
    pub hourly: Money,
    pub on_demand: Money,
    pub billing: BillingRule,
    /// Instances this cell may start: one, plus one per allowed spot interruption.
    pub max_instances: u32,
    pub worst_case: Money,
}

/// A combination the matrix names that cannot run, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dropped {
    pub cloud: Cloud,
    pub region: String,
    pub instance_type: String,
    pub market: Market,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Plan {
    pub sweep_id: String,
    pub name: String,
    pub cells: Vec<Cell>,
    pub dropped: Vec<Dropped>,
    pub repetitions: u32,
    #[serde(serialize_with = "ser_secs", deserialize_with = "de_secs")]
    pub timeout: Duration,
    pub concurrency: usize,
    pub metric: MetricSpec,
    pub worst_case: Money,
    pub budget: Money,
}

fn de_secs<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Duration, D::Error> {
    Ok(Duration::from_secs(u64::deserialize(d)?))
}

fn ser_secs<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

impl Plan {
    pub fn over_budget(&self) -> bool {
        self.worst_case > self.budget
    }

    /// Refuses a plan that cannot run: no cells, or a worst case over the sweep budget.
    pub fn check(&self) -> Result<()> {
        if self.cells.is_empty() {
            let why = self
                .dropped
                .first()
                .map(|d| format!(" (e.g. {} in {}: {})", d.instance_type, d.region, d.reason))
                .unwrap_or_default();
            return Err(Error::invalid_spec(format!(
                "the matrix of sweep `{}` has no cell that can run{why}",
                self.name
            ))
            .with_hint("`herd sweep plan SPEC` lists every combination and why it was dropped"));
        }
        if self.over_budget() {
            return Err(Error::new(
                ErrorKind::BudgetExceeded,
                format!(
                    "the worst case of sweep `{}` is {} ({} cells x on-demand price x {} timeout), over its budget of {}",
                    self.name,
                    self.worst_case,
                    self.cells.len(),
                    herd_core::guardrails::human(self.timeout),
                    self.budget
                ),
            )
            .with_hint(format!(
                "raise `budget` to at least {} in the spec, or shorten `timeout`, or drop cells",
                self.worst_case
            )));
        }
        Ok(())
    }
}

/// The launchers a sweep may use, one per cloud.
pub type Launchers = BTreeMap<Cloud, Launcher>;

/// Expands and prices the matrix. Unknown names (types, families, regions, clouds) are
/// errors with suggestions; names that exist but cannot run here become [`Dropped`].
pub fn plan(spec: &Spec, launchers: &Launchers) -> Result<Plan> {
    let m = &spec.matrix;
    let clouds: Vec<Cloud> = if m.clouds.is_empty() {
        launchers.keys().copied().take(1).collect()
    } else {
        m.clouds.iter().map(|c| c.parse::<Cloud>()).collect::<Result<_>>()?
    };
    let arch = m.arch.as_deref().map(str::parse::<Arch>).transpose()?;
    let mut cells = Vec::new();
    let mut dropped = Vec::new();
    // With several clouds, `us-east-1` or `c7g.large` names one cloud's region or type;
    // each cloud takes the names it knows, and a name no cloud knows is the error.
    let multi = clouds.len() > 1;
    let mut matched = BTreeSet::new();
    let all_reachable = clouds.iter().all(|c| launchers.contains_key(c));
    for &cloud in &clouds {
        let Some(launcher) = launchers.get(&cloud) else {
            dropped.push(Dropped {
                cloud,
                region: "*".into(),
                instance_type: "*".into(),
                market: Market::OnDemand,
                reason: format!("this herd has no {cloud} backend configured"),
            });
            continue;
        };
        let scope = Scope {
            multi,
            matched: &mut matched,
        };
        expand_cloud(spec, cloud, launcher, arch, scope, &mut cells, &mut dropped)?;
    }
    if multi && all_reachable {
        let names = [
            ("region", &m.regions),
            ("instance type", &m.types),
            ("family", &m.families),
        ];
        for (what, list) in names {
            if let Some(n) = list.iter().find(|n| !matched.contains(&format!("{what}:{n}"))) {
                let on: Vec<String> = clouds.iter().map(|c| c.to_string()).collect();
                let mut known: Vec<String> = Vec::new();
                for (c, l) in launchers.iter().filter(|(c, _)| clouds.contains(c)) {
                    let cat = l.catalog();
                    match what {
                        "region" => known.extend(cat.regions(*c).map(|r| r.name.clone())),
                        "instance type" => {
                            known.extend(cat.types().iter().filter(|t| t.cloud == *c).map(|t| t.name.clone()))
                        }
                        _ => known.extend(cat.types().iter().filter(|t| t.cloud == *c).map(|t| t.family.clone())),
                    }
                }
                return Err(
                    Error::invalid_spec(format!("no {what} on {} matches `{n}`", on.join(" or ")))
                        .with_suggestions(did_you_mean(n, known.iter().map(String::as_str), 3))
                        .with_hint(format!("`herd catalog --cloud {}` lists what each cloud has", on[0])),
                );
            }
        }
    }
    let worst_case = cells.iter().map(|c: &Cell| c.worst_case).sum();
    Ok(Plan {
        sweep_id: spec.sweep_id(),
        name: spec.name.clone(),
        cells,
        dropped,
        repetitions: spec.repetitions,
        timeout: spec.timeout,
        concurrency: spec.concurrency,
        metric: spec.workload.metric.clone(),
        worst_case,
        budget: spec.budget,
    })
}

/// How a cloud treats a name it does not know: an error when it is the matrix's only
/// cloud; otherwise skipped here and checked across all clouds by [`plan`].
struct Scope<'a> {
    multi: bool,
    matched: &'a mut BTreeSet<String>,
}

fn expand_cloud(
    spec: &Spec,
    cloud: Cloud,
    launcher: &Launcher,
    arch: Option<Arch>,
    scope: Scope<'_>,
    cells: &mut Vec<Cell>,
    dropped: &mut Vec<Dropped>,
) -> Result<()> {
    let m = &spec.matrix;
    let catalog = launcher.catalog();
    let caps = launcher.capabilities();
    let known: Vec<&InstanceType> = catalog.types().iter().filter(|t| t.cloud == cloud).collect();

    // Regions: names or globs; each must match something.
    let all_regions: Vec<_> = catalog.regions(cloud).collect();
    let region_patterns = if m.regions.is_empty() {
        vec![launcher.info().default_region]
    } else {
        m.regions.clone()
    };
    let mut regions = Vec::new();
    for pat in &region_patterns {
        let hits: Vec<_> = all_regions.iter().filter(|r| glob_match(pat, &r.name)).collect();
        if !hits.is_empty() {
            scope.matched.insert(format!("region:{pat}"));
        } else if scope.multi {
            continue;
        } else {
            return Err(Error::invalid_spec(format!("no {cloud} region matches `{pat}`"))
                .with_suggestions(did_you_mean(pat, all_regions.iter().map(|r| r.name.as_str()), 3))
                .with_hint(format!(
                    "regions on {cloud}: {}",
                    all_regions
                        .iter()
                        .map(|r| r.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
        }
        for r in hits {
            if !regions.iter().any(|x: &&herd_core::catalog::Region| x.name == r.name) {
                regions.push(*r);
            }
        }
    }

    let nothing_here = |what: &str| Dropped {
        cloud,
        region: "*".into(),
        instance_type: "*".into(),
        market: Market::OnDemand,
        reason: format!("none of the matrix's {what} is on {cloud}"),
    };
    if regions.is_empty() {
        dropped.push(nothing_here("regions"));
        return Ok(());
    }

    // Types: explicit names (globs) and families x sizes.
    let mut types: Vec<&InstanceType> = Vec::new();
    for pat in &m.types {
        let hits: Vec<&InstanceType> = known.iter().copied().filter(|t| glob_match(pat, &t.name)).collect();
        if !hits.is_empty() {
            scope.matched.insert(format!("instance type:{pat}"));
        } else if scope.multi {
            continue;
        } else {
            return Err(Error::invalid_spec(format!("unknown instance type `{pat}` on {cloud}"))
                .with_suggestions(did_you_mean(pat, known.iter().map(|t| t.name.as_str()), 3))
                .with_hint(format!("`herd catalog --cloud {cloud}` lists the known types")));
        }
        push_unique(&mut types, hits);
    }
    for fam in &m.families {
        let in_family: Vec<&InstanceType> = known
            .iter()
            .copied()
            .filter(|t| t.family.eq_ignore_ascii_case(fam))
            .collect();
        if !in_family.is_empty() {
            scope.matched.insert(format!("family:{fam}"));
        } else if scope.multi {
            continue;
        } else {
            let mut fams: Vec<&str> = known.iter().map(|t| t.family.as_str()).collect();
            fams.sort_unstable();
            fams.dedup();
            return Err(
                Error::invalid_spec(format!("unknown instance family `{fam}` on {cloud}"))
                    .with_suggestions(did_you_mean(fam, fams.iter().copied(), 3))
                    .with_hint(format!("families on {cloud}: {}", fams.join(", "))),
            );
        }
        let sized: Vec<&InstanceType> = in_family
            .iter()
            .copied()
            .filter(|t| m.sizes.is_empty() || m.sizes.iter().any(|s| size_of(t).eq_ignore_ascii_case(s)))
            .collect();
        if sized.is_empty() {
            return Err(Error::invalid_spec(format!(
                "family `{fam}` on {cloud} has none of the sizes {}",
                m.sizes.join(", ")
            ))
            .with_hint(format!(
                "sizes of {fam}: {}",
                in_family.iter().map(|t| size_of(t)).collect::<Vec<_>>().join(", ")
            )));
        }
        push_unique(&mut types, sized);
    }

    if types.is_empty() && (!m.types.is_empty() || !m.families.is_empty()) {
        dropped.push(nothing_here("types and families"));
        return Ok(());
    }

    if !caps.exec {
        // A sweep runs its workload through exec; launching here would bill for nothing.
        dropped.push(Dropped {
            reason: format!(
                "herd cannot run commands on {cloud} instances yet (no exec), so nothing could be measured"
            ),
            ..nothing_here("")
        });
        return Ok(());
    }

    for t in types {
        let hw_reason = hardware_mismatch(t, arch, m.gpu.as_ref(), caps.gpu);
        for region in &regions {
            for &market in &m.markets {
                let drop = |reason: String| Dropped {
                    cloud,
                    region: region.name.clone(),
                    instance_type: t.name.clone(),
                    market,
                    reason,
                };
                if let Some(r) = &hw_reason {
                    dropped.push(drop(r.clone()));
                    continue;
                }
                if !caps.regions.is_empty() && !caps.regions.contains(&region.name) {
                    dropped.push(drop(format!("region {} is not enabled for {cloud}", region.name)));
                    continue;
                }
                if market.wants_spot() && !caps.spot {
                    dropped.push(drop(format!("{cloud} offers no spot instances here")));
                    continue;
                }
                let od = match catalog.quote(
                    cloud,
                    &QuoteRequest::new(&t.name, &region.name, PurchaseOption::OnDemand),
                    caps.billing,
                ) {
                    Ok(q) => q,
                    Err(e) => {
                        dropped.push(drop(e.message().to_string()));
                        continue;
                    }
                };
                let hourly = if market.wants_spot() {
                    match catalog.quote(
                        cloud,
                        &QuoteRequest::new(&t.name, &region.name, PurchaseOption::Spot),
                        caps.billing,
                    ) {
                        Ok(q) => q.hourly,
                        Err(_) if market == Market::SpotOrOnDemand => od.hourly,
                        Err(e) => {
                            dropped.push(drop(e.message().to_string()));
                            continue;
                        }
                    }
                } else {
                    od.hourly
                };
                let max_instances = if market.wants_spot() {
                    1 + spec.max_interruptions
                } else {
                    1
                };
                // On-demand even for spot: a spot cell may fall back, and this is a ceiling.
                let worst_case = od.for_duration(max_instances, spec.timeout);
                cells.push(Cell {
                    id: cell_id(cloud, &region.name, &t.name, market),
                    cloud,
                    region: region.name.clone(),
                    zones: region.zones.clone(),
                    instance_type: t.name.clone(),
                    family: t.family.clone(),
                    vcpus: t.vcpus,
                    memory_mib: t.memory_mib,
                    arch: t.arch,
                    gpu: t.gpu.as_ref().map(|g| format!("{}x {}", g.count, g.model)),
                    market,
                    hourly,
                    on_demand: od.hourly,
                    billing: caps.billing,
                    max_instances,
                    worst_case,
                });
            }
        }
    }
    Ok(())
}

fn push_unique<'a>(into: &mut Vec<&'a InstanceType>, more: Vec<&'a InstanceType>) {
    for t in more {
        if !into.iter().any(|x| x.name == t.name) {
            into.push(t);
        }
    }
}

/// `large` of `l1.large` / `c7g.large`, `4` of `n2-standard-4`.
fn size_of(t: &InstanceType) -> &str {
    t.name.rsplit(['.', '-', '_']).next().unwrap_or(&t.name)
}

fn hardware_mismatch(t: &InstanceType, arch: Option<Arch>, gpu: Option<&GpuFilter>, can_gpu: bool) -> Option<String> {
    if let Some(a) = arch {
        if t.arch != a {
            return Some(format!(
                "arch mismatch: {} is {}, the matrix asks for {a}",
                t.name, t.arch
            ));
        }
    }
    match gpu {
        Some(GpuFilter::Required(true)) if t.gpu.is_none() => return Some(format!("{} has no GPU", t.name)),
        Some(GpuFilter::Required(false)) if t.gpu.is_some() => return Some(format!("{} has a GPU", t.name)),
        Some(GpuFilter::Model(model)) => {
            let ok = t
                .gpu
                .as_ref()
                .is_some_and(|g| g.model.to_ascii_lowercase().contains(&model.to_ascii_lowercase()));
            if !ok {
                return Some(format!("{} has no {model} GPU", t.name));
            }
        }
        _ => {}
    }
    if t.gpu.is_some() && !can_gpu {
        return Some(format!("{} has GPUs, which this backend cannot launch", t.name));
    }
    None
}

/// `local-east-1.l1-small.od`-like, sanitized to a tag value.
pub fn cell_id(cloud: Cloud, region: &str, instance_type: &str, market: Market) -> String {
    let m = match market {
        Market::OnDemand => "od",
        Market::Spot => "spot",
        Market::SpotOrOnDemand => "spotod",
    };
    herd_core::tags::sanitize_value(&format!("{cloud}_{region}_{instance_type}_{m}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn launchers() -> Launchers {
        // Virtual exec on: a sweep plans only on clouds that can run its commands.
        let sim = herd_local::LocalProvider::builder()
            .in_memory()
            .processes(false)
            .virtual_exec(true)
            .clock(Arc::new(herd_core::VirtualClock::at_epoch()))
            .seed(1)
            .build()
            .unwrap();
        BTreeMap::from([(Cloud::Local, Launcher::new(Arc::new(sim)))])
    }

    fn spec(matrix: &str, budget: &str) -> Spec {
        let text = format!(
            "name = \"t\"\nrepetitions = 2\ntimeout = \"10m\"\nbudget = \"{budget}\"\n[workload]\nrun = \"true\"\n[matrix]\n{matrix}\n"
        );
        Spec::parse_with(&text, "t.toml", |_| Ok(Vec::new())).unwrap()
    }

    /// A second cloud for multi-cloud matrices: one type in one region, nothing callable.
    #[derive(Debug)]
    struct Elsewhere {
        caps: herd_core::Capabilities,
        catalog: herd_core::Catalog,
    }

    impl Elsewhere {
        fn launcher(exec: bool) -> Launcher {
            let mut caps = herd_core::Capabilities::none(herd_core::BillingRule::AWS);
            caps.exec = exec;
            let src = herd_core::PriceSource {
                name: "test".into(),
                as_of: chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
                licence: "x".into(),
            };
            let catalog = herd_core::Catalog::new(
                vec![InstanceType::new(Cloud::Aws, "a1.large", "a1", 2, 4096, Arch::X86_64)],
                vec![herd_core::Offer::new(
                    Cloud::Aws,
                    "a1.large",
                    "us-east-1",
                    herd_core::PurchaseOption::OnDemand,
                    Some(Money::parse_usd("0.05").unwrap()),
                    0,
                )],
                vec![src],
                vec![herd_core::catalog::Region {
                    cloud: Cloud::Aws,
                    name: "us-east-1".into(),
                    zones: Vec::new(),
                }],
            );
            Launcher::new(Arc::new(Elsewhere { caps, catalog }))
        }
    }

    #[async_trait::async_trait]
    impl herd_core::Provider for Elsewhere {
        fn info(&self) -> herd_core::ProviderInfo {
            herd_core::ProviderInfo::new(Cloud::Aws, "test", "us-east-1")
        }
        fn capabilities(&self) -> &herd_core::Capabilities {
            &self.caps
        }
        fn catalog(&self) -> &herd_core::Catalog {
            &self.catalog
        }
        async fn launch(&self, _: &herd_core::LaunchRequest) -> Result<Vec<herd_core::Instance>> {
            Err(Error::unsupported("planning never launches"))
        }
        async fn terminate(&self, _: &[String]) -> Result<Vec<herd_core::TerminateResult>> {
            Err(Error::unsupported("planning never terminates"))
        }
        async fn list(&self, _: &herd_core::ListRequest) -> Result<Vec<herd_core::Instance>> {
            Err(Error::unsupported("planning never lists"))
        }
    }

    #[test]
    fn a_multi_cloud_matrix_gives_each_cloud_the_names_it_knows() {
        let mut ls = launchers();
        ls.insert(Cloud::Aws, Elsewhere::launcher(true));
        let matrix = "clouds = [\"aws\", \"local\"]\ntypes = [\"a1.large\", \"l1.small\"]\nregions = [\"us-east-1\", \"local-east-1\"]";
        let p = plan(&spec(matrix, "100"), &ls).unwrap();
        let cells: Vec<(Cloud, &str, &str)> = p
            .cells
            .iter()
            .map(|c| (c.cloud, c.instance_type.as_str(), c.region.as_str()))
            .collect();
        assert_eq!(
            cells,
            [
                (Cloud::Aws, "a1.large", "us-east-1"),
                (Cloud::Local, "l1.small", "local-east-1")
            ]
        );

        // A name no cloud of the matrix knows is still an error, with suggestions.
        let typo = matrix.replace("a1.large", "a1.larg");
        let e = plan(&spec(&typo, "100"), &ls).unwrap_err();
        assert!(e.message().contains("a1.larg"), "{e}");
        assert_eq!(e.suggestions()[0], "a1.large");

        // A cloud that cannot run commands is dropped before it could bill for nothing.
        ls.insert(Cloud::Aws, Elsewhere::launcher(false));
        let p = plan(&spec(matrix, "100"), &ls).unwrap();
        assert!(p.cells.iter().all(|c| c.cloud == Cloud::Local));
        assert!(p
            .dropped
            .iter()
            .any(|d| d.cloud == Cloud::Aws && d.reason.contains("no exec")));
    }

    #[test]
    fn expands_types_regions_and_markets() {
        let s = spec(
            "types = [\"l1.small\", \"l1.large\"]\nregions = [\"local-*\"]\nmarkets = [\"on-demand\", \"spot\"]",
            "100",
        );
        let p = plan(&s, &launchers()).unwrap();
        assert_eq!(p.cells.len(), 2 * 3 * 2);
        assert!(p.dropped.is_empty());
        let spot = p.cells.iter().find(|c| c.market == Market::Spot).unwrap();
        assert!(spot.hourly < spot.on_demand);
        assert_eq!(spot.max_instances, 3);
        // 10 minutes of l1.large on-demand in east: 0.0416 / 6.
        let c = p
            .cells
            .iter()
            .find(|c| c.id == cell_id(Cloud::Local, "local-east-1", "l1.large", Market::OnDemand));
        assert_eq!(
            c.unwrap().worst_case,
            Money::parse_usd("0.0416").unwrap().per_hour_for_seconds(600)
        );
        let ids: std::collections::BTreeSet<_> = p.cells.iter().map(|c| &c.id).collect();
        assert_eq!(ids.len(), p.cells.len(), "cell ids are unique");
        p.check().unwrap();
    }

    #[test]
    fn families_and_sizes() {
        let s = spec("families = [\"c1\", \"l1\"]\nsizes = [\"xlarge\"]", "100");
        let p = plan(&s, &launchers()).unwrap();
        let names: Vec<_> = p.cells.iter().map(|c| c.instance_type.as_str()).collect();
        assert_eq!(names, ["c1.xlarge", "l1.xlarge"]);
        let e = plan(&spec("families = [\"c2\"]", "1"), &launchers()).unwrap_err();
        assert_eq!(e.suggestions()[0], "c1");
    }

    #[test]
    fn impossible_cells_are_dropped_with_a_reason() {
        let other = if Arch::host() == Arch::X86_64 {
            "arm64"
        } else {
            "x86_64"
        };
        let s = spec(&format!("types = [\"l1.small\"]\narch = \"{other}\""), "100");
        let p = plan(&s, &launchers()).unwrap();
        assert!(p.cells.is_empty());
        assert!(p.dropped[0].reason.contains("arch mismatch"), "{:?}", p.dropped);
        let e = p.check().unwrap_err();
        assert!(e.message().contains("no cell"), "{e}");
        let s = spec("types = [\"l1.small\"]\ngpu = true", "100");
        assert!(plan(&s, &launchers()).unwrap().dropped[0].reason.contains("no GPU"));
    }

    #[test]
    fn unknown_names_suggest() {
        let e = plan(&spec("types = [\"l1.smal\"]", "1"), &launchers()).unwrap_err();
        assert_eq!(e.suggestions()[0], "l1.small");
        let e = plan(
            &spec("types = [\"l1.small\"]\nregions = [\"local-est-1\"]", "1"),
            &launchers(),
        )
        .unwrap_err();
        assert_eq!(e.suggestions()[0], "local-east-1");
    }

    #[test]
    fn over_budget_is_refused_with_the_needed_amount() {
        let s = spec("types = [\"c1.2xlarge\"]\nregions = [\"local-*\"]", "0.01");
        let p = plan(&s, &launchers()).unwrap();
        let e = p.check().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BudgetExceeded);
        assert!(e.hint().unwrap().contains(&p.worst_case.to_string()), "{:?}", e.hint());
    }
}
