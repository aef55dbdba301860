//! Google's own description of Compute Engine (the discovery document in
//! `../shared/data/gcp/compute.v1.json`), used by the fake to find which method a request
//! calls and to hold every request body to its schema, as the real API does: an unknown
//! field, a wrong type or a missing required field is a 400 in GCE's error shape.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

/// One method: HTTP method, path template split in segments, method id, request schema.
type Method = (String, Vec<String>, String, Option<String>);

/// The discovery document, read once.
#[derive(Debug)]
pub struct Discovery {
    schemas: serde_json::Map<String, Value>,
    methods: Vec<Method>,
}

/// Where the document is: `HERD_SHARED_DATA`, else `shared/data` beside any ancestor of
/// this crate (the repository's `../shared/data`), else `/work/shared/data`.
pub fn document_path() -> Result<PathBuf, String> {
    let rel = "gcp/compute.v1.json";
    let mut tried = Vec::new();
    if let Some(d) = std::env::var_os("HERD_SHARED_DATA") {
        let p = PathBuf::from(d).join(rel);
        if p.is_file() {
            return Ok(p);
        }
        tried.push(p);
    }
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for a in here.ancestors() {
        let p = a.join("shared/data").join(rel);
        if p.is_file() {
            return Ok(p);
        }
        tried.push(p);
    }
    let p = PathBuf::from("/work/shared/data").join(rel);
    if p.is_file() {
        return Ok(p);
    }
    tried.push(p);
    Err(format!(
        "the GCE discovery document is missing (tried {}): the fake Compute Engine checks every request \
         against it; put the shared data at ../shared/data or set HERD_SHARED_DATA to its folder",
        tried
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

fn collect(resources: &Value, out: &mut Vec<Method>) {
    for (_, r) in resources.as_object().into_iter().flatten() {
        for (_, m) in r.get("methods").and_then(Value::as_object).into_iter().flatten() {
            let path = m
                .get("flatPath")
                .or_else(|| m.get("path"))
                .and_then(Value::as_str)
                .unwrap_or("");
            out.push((
                m.get("httpMethod").and_then(Value::as_str).unwrap_or("").to_string(),
                path.split('/').map(str::to_string).collect(),
                m.get("id").and_then(Value::as_str).unwrap_or("").to_string(),
                m.pointer("/request/$ref").and_then(Value::as_str).map(str::to_string),
            ));
        }
        if let Some(sub) = r.get("resources") {
            collect(sub, out);
        }
    }
}

impl Discovery {
    pub fn load() -> Result<Discovery, String> {
        let p = document_path()?;
        let text = std::fs::read_to_string(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
        let doc: Value = serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", p.display()))?;
        let mut methods = Vec::new();
        collect(doc.get("resources").unwrap_or(&Value::Null), &mut methods);
        let schemas = doc
            .get("schemas")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if methods.is_empty() || schemas.is_empty() {
            return Err(format!("{} has no methods or schemas", p.display()));
        }
        Ok(Discovery { schemas, methods })
    }

    /// The method a request calls: (id, request schema, path parameters). `path` is after
    /// `/compute/v1/`. Literal segments win over parameters.
    pub fn method(&self, http: &str, path: &str) -> Option<(String, Option<String>, BTreeMap<String, String>)> {
        let segs: Vec<&str> = path.split('/').collect();
        let mut best: Option<(usize, &Method, BTreeMap<String, String>)> = None;
        for m in &self.methods {
            if m.0 != http || m.1.len() != segs.len() {
                continue;
            }
            let mut params = BTreeMap::new();
            let mut literal = 0;
            let ok = m.1.iter().zip(&segs).all(|(t, s)| {
                if let Some(name) = t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                    params.insert(name.to_string(), s.to_string());
                    !s.is_empty()
                } else {
                    literal += 1;
                    t == s
                }
            });
            if ok && best.as_ref().is_none_or(|b| literal > b.0) {
                best = Some((literal, m, params));
            }
        }
        best.map(|(_, m, p)| (m.2.clone(), m.3.clone(), p))
    }

    /// Checks `body` against schema `name` for method `id`; `Err` says what is wrong and where.
    pub fn validate(&self, id: &str, name: &str, body: &Value) -> Result<(), String> {
        let s = self.schemas.get(name).ok_or_else(|| format!("no schema {name}"))?;
        self.check(id, s, body, "")
    }

    fn check(&self, id: &str, s: &Value, v: &Value, at: &str) -> Result<(), String> {
        if let Some(r) = s.get("$ref").and_then(Value::as_str) {
            let t = self.schemas.get(r).ok_or_else(|| format!("no schema {r}"))?;
            return self.check(id, t, v, at);
        }
        let here = if at.is_empty() { "the body" } else { at };
        let ty = s.get("type").and_then(Value::as_str).unwrap_or("any");
        let wrong = |want: &str| Err(format!("Invalid value at '{here}': expected {want}, got {v}"));
        match ty {
            "object" => {
                let Some(m) = v.as_object() else {
                    return wrong("an object");
                };
                let props = s.get("properties").and_then(Value::as_object);
                let extra = s.get("additionalProperties");
                for (k, x) in m {
                    let sub = format!("{}{k}", if at.is_empty() { String::new() } else { format!("{at}.") });
                    match (props.and_then(|p| p.get(k)), extra) {
                        (Some(ps), _) => self.check(id, ps, x, &sub)?,
                        (None, Some(e)) => self.check(id, e, x, &sub)?,
                        (None, None) => {
                            return Err(format!(
                                "Invalid JSON payload received. Unknown name \"{k}\" at '{here}': Cannot find field."
                            ))
                        }
                    }
                }
                for (k, ps) in props.into_iter().flatten() {
                    let required = ps
                        .pointer("/annotations/required")
                        .and_then(Value::as_array)
                        .is_some_and(|r| r.iter().any(|x| x.as_str() == Some(id)));
                    if required && !m.contains_key(k) {
                        return Err(format!(
                            "Required field '{}{k}' not specified",
                            if at.is_empty() { String::new() } else { format!("{at}.") }
                        ));
                    }
                }
                Ok(())
            }
            "array" => {
                let Some(a) = v.as_array() else {
                    return wrong("an array");
                };
                let items = s.get("items").cloned().unwrap_or(Value::Null);
                for (i, x) in a.iter().enumerate() {
                    self.check(id, &items, x, &format!("{here}[{i}]"))?;
                }
                Ok(())
            }
            "string" => {
                let Some(t) = v.as_str() else { return wrong("a string") };
                match s.get("format").and_then(Value::as_str) {
                    Some("int64") if t.parse::<i64>().is_err() => return wrong("an int64 as a string"),
                    Some("uint64") if t.parse::<u64>().is_err() => return wrong("a uint64 as a string"),
                    _ => {}
                }
                if let Some(e) = s.get("enum").and_then(Value::as_array) {
                    if !e.iter().any(|x| x.as_str() == Some(t)) {
                        return Err(format!(
                            "Invalid value at '{here}': \"{t}\" is not one of the enum's values"
                        ));
                    }
                }
                Ok(())
            }
            "integer" if !(v.is_i64() || v.is_u64()) => wrong("an integer"),
            "number" if !v.is_number() => wrong("a number"),
            "boolean" if !v.is_boolean() => wrong("a boolean"),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bodies_are_held_to_the_document() {
        let d = Discovery::load().unwrap();
        let (id, req, p) = d
            .method("POST", "projects/p/zones/us-central1-a/instances/bulkInsert")
            .unwrap();
        assert_eq!(
            (id.as_str(), req.as_deref()),
            ("compute.instances.bulkInsert", Some("BulkInsertInstanceResource"))
        );
        assert_eq!(p["zone"], "us-central1-a");
        let ok = json!({"count": "2", "instanceProperties": {"machineType": "e2-micro", "scheduling": {"instanceTerminationAction": "DELETE"}}});
        d.validate(&id, "BulkInsertInstanceResource", &ok).unwrap();
        let e = d
            .validate(&id, "BulkInsertInstanceResource", &json!({"cuont": "2"}))
            .unwrap_err();
        assert!(e.contains("Unknown name \"cuont\""), "{e}");
        let e = d
            .validate(&id, "BulkInsertInstanceResource", &json!({"count": 2}))
            .unwrap_err();
        assert!(e.contains("expected a string"), "{e}");
        let e = d
            .validate(
                &id,
                "BulkInsertInstanceResource",
                &json!({"instanceProperties": {"scheduling": {"instanceTerminationAction": "EXPLODE"}}}),
            )
            .unwrap_err();
        assert!(e.contains("enum"), "{e}");
        let e = d
            .validate("compute.firewalls.insert", "Firewall", &json!({"description": "x"}))
            .unwrap_err();
        assert!(e.contains("Required field 'name'"), "{e}");
        let (id, _, _) = d.method("POST", "projects/p/zones/z/operations/op-1/wait").unwrap();
        assert_eq!(id, "compute.zoneOperations.wait");
        let (id, _, _) = d.method("GET", "projects/p/aggregated/instances").unwrap();
        assert_eq!(id, "compute.instances.aggregatedList");
    }
}
