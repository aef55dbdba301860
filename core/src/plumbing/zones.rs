//! Zone fallback, for every cloud whose capacity is per zone: where the user pinned a
//! zone, only there (a choice, not a preference); otherwise wherever the cloud places it,
//! then zone by zone, in order, while each reports no capacity. Zones that had none are
//! recorded (the CLI says where it landed and what it skipped); any other error stops at
//! once, since another zone would not fix a bad image or a quota.

use std::future::Future;

use crate::error::{Error, ErrorKind, Result};

/// The bookkeeping of one fallback, for callers that drive the attempts themselves (the
/// simulator does, inside its transaction); [`try_zones`] drives it for async calls.
#[derive(Debug)]
pub struct ZoneFallback {
    region: String,
    instance_type: String,
    pinned: Option<String>,
    misses: Vec<String>,
    last: Option<Error>,
}

impl ZoneFallback {
    /// A fallback in `region`, pinned to `zone` when the user named one.
    pub fn new(region: &str, instance_type: &str, pinned: Option<&str>) -> Self {
        ZoneFallback {
            region: region.to_string(),
            instance_type: instance_type.to_string(),
            pinned: pinned.map(str::to_string),
            misses: Vec::new(),
            last: None,
        }
    }

    /// The zone the user pinned, if any (then it is the only attempt).
    pub fn pinned(&self) -> Option<&str> {
        self.pinned.as_deref()
    }

    /// Whether `zone` is still worth a try: not already short of capacity in this fallback.
    pub fn worth_trying(&self, zone: &str) -> bool {
        !self.misses.iter().any(|m| m == zone)
    }

    /// Records an attempt in `zone` (`None`: the cloud chose): `Ok(Some(v))` landed,
    /// `Ok(None)` no capacity there (try the next), `Err` any other failure (stop).
    pub fn attempt<T>(&mut self, zone: Option<&str>, r: Result<T>) -> Result<Option<T>> {
        match r {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.kind() == ErrorKind::InsufficientCapacity => {
                if let Some(z) = self.pinned.as_deref() {
                    return Err(e.with_hint(format!("no capacity in {z}; drop --zone to let herd try the others")));
                }
                if let Some(z) = zone {
                    if self.worth_trying(z) {
                        self.misses.push(z.to_string());
                    }
                }
                self.last = Some(e);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The zones that reported no capacity, in the order tried.
    pub fn misses(&self) -> &[String] {
        &self.misses
    }

    /// The error once every zone was tried: the last capacity error, with what was tried.
    pub fn exhausted(mut self) -> Error {
        let last = self.last.take();
        self.exhausted_as(last)
    }

    /// [`Self::exhausted`] with the backend's own wording of the refusal (the simulator
    /// names every zone, as EC2's message would); `None`: a generic one.
    pub fn exhausted_as(self, e: Option<Error>) -> Error {
        let tried = if self.misses.is_empty() {
            String::new()
        } else {
            format!(" (tried {})", self.misses.join(", "))
        };
        let hint = format!(
            "no zone of {} has capacity for {} now{tried}; try another region or type",
            self.region, self.instance_type
        );
        match e {
            Some(e) => e.with_hint(hint),
            None => Error::new(
                ErrorKind::InsufficientCapacity,
                format!("{} knows no zone to place {} in", self.region, self.instance_type),
            )
            .with_hint(hint),
        }
    }
}

/// Runs `attempt(zone)`: in the pinned zone only; else with `None` (the cloud places it)
/// and, while that reports no capacity, in each zone `zones()` lists (asked only then), in
/// order. Returns what landed and the zones that had no capacity.
pub async fn try_zones<T, Z, ZF, A, AF>(mut fb: ZoneFallback, zones: Z, mut attempt: A) -> Result<(T, Vec<String>)>
where
    Z: FnOnce() -> ZF,
    ZF: Future<Output = Result<Vec<String>>>,
    A: FnMut(Option<String>) -> AF,
    AF: Future<Output = Result<T>>,
{
    if let Some(z) = fb.pinned().map(str::to_string) {
        let r = attempt(Some(z.clone())).await;
        return match fb.attempt(Some(&z), r)? {
            Some(v) => Ok((v, Vec::new())),
            None => Err(fb.exhausted()),
        };
    }
    let r = attempt(None).await;
    if let Some(v) = fb.attempt(None, r)? {
        return Ok((v, Vec::new()));
    }
    for z in zones().await? {
        if !fb.worth_trying(&z) {
            continue;
        }
        let r = attempt(Some(z.clone())).await;
        if let Some(v) = fb.attempt(Some(&z), r)? {
            let misses = fb.misses().to_vec();
            return Ok((v, misses));
        }
    }
    Err(fb.exhausted())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn full(z: &str) -> Error {
        Error::new(ErrorKind::InsufficientCapacity, format!("no capacity in {z}"))
    }

    /// A cloud whose zones `free` have capacity; records every attempt.
    async fn run(
        pinned: Option<&str>,
        zones: &[&str],
        free: &[&str],
        anywhere: bool,
    ) -> (Result<(String, Vec<String>)>, Vec<Option<String>>) {
        let tried = Mutex::new(Vec::new());
        let zones: Vec<String> = zones.iter().map(|z| z.to_string()).collect();
        let r = try_zones(
            ZoneFallback::new("r1", "t.big", pinned),
            || async { Ok(zones) },
            |z: Option<String>| {
                tried.lock().unwrap().push(z.clone());
                let ok = match &z {
                    None => anywhere,
                    Some(z) => free.contains(&z.as_str()),
                };
                async move {
                    match z {
                        Some(z) if ok => Ok(z),
                        None if ok => Ok("placed".to_string()),
                        Some(z) if z == "bad" => Err(Error::invalid_spec("bad image")),
                        Some(z) => Err(full(&z)),
                        None => Err(full("r1")),
                    }
                }
            },
        )
        .await;
        (r, tried.into_inner().unwrap())
    }

    #[tokio::test]
    async fn the_clouds_choice_first_then_zone_by_zone() {
        let (r, tried) = run(None, &["a", "b", "c"], &[], true).await;
        assert_eq!(r.unwrap(), ("placed".to_string(), vec![]));
        assert_eq!(tried, [None]);
        let (r, tried) = run(None, &["a", "b", "c", "a"], &["c"], false).await;
        assert_eq!(r.unwrap(), ("c".to_string(), vec!["a".to_string(), "b".to_string()]));
        assert_eq!(tried, [None, Some("a".into()), Some("b".into()), Some("c".into())]);
    }

    #[tokio::test]
    async fn every_zone_full_says_what_was_tried() {
        let (r, tried) = run(None, &["a", "b", "a"], &[], false).await;
        let e = r.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InsufficientCapacity);
        assert_eq!(
            e.hint(),
            Some("no zone of r1 has capacity for t.big now (tried a, b); try another region or type")
        );
        assert_eq!(tried.len(), 3, "a zone already short is skipped: {tried:?}");
    }

    #[tokio::test]
    async fn a_pinned_zone_is_the_only_attempt() {
        let (r, tried) = run(Some("b"), &["a", "b"], &["a"], true).await;
        let e = r.unwrap_err();
        assert!(e.hint().unwrap().contains("no capacity in b; drop --zone"), "{e:?}");
        assert_eq!(tried, [Some("b".to_string())]);
        let (r, _) = run(Some("a"), &["a", "b"], &["a"], false).await;
        assert_eq!(r.unwrap().0, "a");
    }

    #[tokio::test]
    async fn any_other_error_stops_at_once() {
        let (r, tried) = run(None, &["a", "bad", "c"], &["c"], false).await;
        assert_eq!(r.unwrap_err().kind(), ErrorKind::InvalidSpec);
        assert_eq!(tried.len(), 3, "c was never tried: {tried:?}");
    }
}
