//! Terminate's answers, checked whole: every id asked about gets an outcome, in the order
//! asked, and a cloud's answer is matched id by id. An id the answer leaves out is an
//! error (temporary: terminating is idempotent, so asking again settles it), never taken
//! for "already gone"; an id the answer names that was not asked about is ignored.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::request::{TerminateOutcome, TerminateResult};

/// Matches one terminate call's answer (`(id, outcome)` pairs, in any order) to the ids
/// it was asked about. `what` names the call for the error (`EC2's TerminateInstances`).
pub fn match_answer<'a, I>(what: &str, asked: &[String], answer: I) -> Result<Vec<TerminateResult>>
where
    I: IntoIterator<Item = (&'a str, TerminateOutcome)>,
{
    let answered: HashMap<&str, TerminateOutcome> = answer.into_iter().collect();
    let mut out = Vec::with_capacity(asked.len());
    let mut missing: Vec<&str> = Vec::new();
    for id in asked {
        match answered.get(id.as_str()) {
            Some(o) => out.push(TerminateResult::new(id, *o)),
            None => missing.push(id),
        }
    }
    if missing.is_empty() {
        return Ok(out);
    }
    Err(Error::unexpected(format!(
        "{what} answer left out {}: herd cannot tell whether {} terminated",
        missing.join(", "),
        if missing.len() == 1 { "it was" } else { "they were" }
    ))
    .temporary(true)
    .with_context("instance", missing[0].to_string()))
}

/// The outcome of every id asked about, in the order asked (a repeated id answered each
/// time), from what the backend settled per id; an id it did not settle is an error.
pub fn in_order(ids: &[String], settled: &HashMap<String, TerminateOutcome>) -> Result<Vec<TerminateResult>> {
    ids.iter()
        .map(|id| match settled.get(id) {
            Some(o) => Ok(TerminateResult::new(id, *o)),
            None => Err(
                Error::unexpected(format!("herd lost track of instance {id} while terminating"))
                    .with_context("instance", id.clone()),
            ),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn an_answer_is_matched_id_by_id_in_the_order_asked() {
        let asked = ids(&["i-1", "i-2", "i-3"]);
        let got = match_answer(
            "TerminateInstances",
            &asked,
            [
                ("i-3", TerminateOutcome::AlreadyGone),
                ("i-9", TerminateOutcome::Terminated),
                ("i-1", TerminateOutcome::Terminated),
                ("i-2", TerminateOutcome::Terminated),
            ],
        )
        .unwrap();
        let order: Vec<(&str, TerminateOutcome)> = got.iter().map(|r| (r.id.as_str(), r.outcome)).collect();
        assert_eq!(
            order,
            [
                ("i-1", TerminateOutcome::Terminated),
                ("i-2", TerminateOutcome::Terminated),
                ("i-3", TerminateOutcome::AlreadyGone)
            ]
        );
    }

    #[test]
    fn an_id_left_out_is_a_temporary_error_never_gone() {
        let asked = ids(&["i-1", "i-2", "i-3"]);
        let e = match_answer(
            "EC2's TerminateInstances",
            &asked,
            [("i-2", TerminateOutcome::Terminated)],
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unexpected);
        assert!(e.is_temporary());
        assert_eq!(
            e.message(),
            "EC2's TerminateInstances answer left out i-1, i-3: herd cannot tell whether they were terminated"
        );
        assert_eq!(e.context_value("instance"), Some("i-1"));
        let e = match_answer("X", &ids(&["i-1"]), []).unwrap_err();
        assert!(e.message().ends_with("whether it was terminated"), "{e}");
    }

    #[test]
    fn every_id_gets_its_outcome_in_order() {
        let settled: HashMap<String, TerminateOutcome> = [
            ("b".to_string(), TerminateOutcome::AlreadyGone),
            ("a".to_string(), TerminateOutcome::Terminated),
        ]
        .into();
        let got = in_order(&ids(&["a", "b", "a"]), &settled).unwrap();
        let order: Vec<&str> = got.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(order, ["a", "b", "a"]);
        assert_eq!(got[1].outcome, TerminateOutcome::AlreadyGone);
        let e = in_order(&ids(&["a", "c"]), &settled).unwrap_err();
        assert!(e.message().contains("lost track of instance c"), "{e}");
    }
}
