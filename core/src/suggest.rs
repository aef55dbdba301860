//! "Did you mean ...?": the nearest names by edit distance, for every unknown-name error.

/// Up to `max` candidates close to `input`, nearest first. A candidate is close when its
/// Damerau-Levenshtein distance is at most a third of the input's length (at least 2), or
/// when one is a prefix of the other.
pub fn did_you_mean<'a>(input: &str, candidates: impl IntoIterator<Item = &'a str>, max: usize) -> Vec<String> {
    let lower = input.to_ascii_lowercase();
    let limit = (lower.len() / 3).max(2);
    let mut scored: Vec<(usize, &str)> = candidates
        .into_iter()
        .filter_map(|c| {
            let cl = c.to_ascii_lowercase();
            let d = strsim::damerau_levenshtein(&lower, &cl);
            let prefix = !lower.is_empty() && (cl.starts_with(&lower) || lower.starts_with(&cl));
            (d <= limit || prefix).then_some((if prefix { d.min(1) } else { d }, c))
        })
        .collect();
    scored.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.len().cmp(&b.1.len())).then(a.1.cmp(b.1)));
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(max).map(|(_, c)| c.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_first() {
        let names = ["l1.large", "l1.xlarge", "l1.small", "c1.large"];
        assert_eq!(did_you_mean("l1.larg", names, 1), vec!["l1.large"]);
        assert_eq!(did_you_mean("l1.smal", names, 3)[0], "l1.small");
        assert!(did_you_mean("zzzzzzzzzz", names, 3).is_empty());
    }
}
