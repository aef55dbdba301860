//! "Did you mean ...?": the nearest names by edit distance, for every unknown-name error.

/// Longest part of an input (and of a candidate) that is compared, in characters. Names
/// herd suggests (types, regions, zones, keys) are far shorter; the edit distance costs
/// the product of both lengths, so a 100,000-character `--type` compared whole took 11 s.
pub const MAX_COMPARED: usize = 128;

/// A user's input as an error message quotes it: whole when short, else its head and its
/// length, so a 100,000-character `--type` does not fill the terminal.
pub fn quoted(input: &str) -> String {
    const SHOWN: usize = 64;
    let n = input.chars().count();
    if n <= SHOWN {
        return input.to_string();
    }
    let head: String = input.chars().take(SHOWN).collect();
    format!("{head}… ({n} characters)")
}

/// Up to `max` candidates close to `input`, nearest first. A candidate is close when its
/// Damerau-Levenshtein distance is at most a third of the input's length (at least 2), or
/// when one is a prefix of the other. Only the first [`MAX_COMPARED`] characters count,
/// and a candidate whose length alone puts it out of reach is not compared at all, so
/// any input answers in microseconds per candidate.
pub fn did_you_mean<'a>(input: &str, candidates: impl IntoIterator<Item = &'a str>, max: usize) -> Vec<String> {
    let head = |s: &str| -> String { s.chars().take(MAX_COMPARED).collect::<String>().to_ascii_lowercase() };
    let lower = head(input);
    let len = lower.chars().count();
    let limit = (len / 3).max(2);
    let mut scored: Vec<(usize, &str)> = candidates
        .into_iter()
        .filter_map(|c| {
            let cl = head(c);
            let prefix = !lower.is_empty() && (cl.starts_with(&lower) || lower.starts_with(&cl));
            // The distance is at least the difference in length.
            if !prefix && cl.chars().count().abs_diff(len) > limit {
                return None;
            }
            let d = strsim::damerau_levenshtein(&lower, &cl);
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
    fn long_inputs_are_quoted_by_their_head() {
        assert_eq!(quoted("l1.larg"), "l1.larg");
        let q = quoted(&"a".repeat(100_000));
        assert!(q.ends_with("… (100000 characters)") && q.len() < 100, "{q}");
    }

    #[test]
    fn nearest_first() {
        let names = ["l1.large", "l1.xlarge", "l1.small", "c1.large"];
        assert_eq!(did_you_mean("l1.larg", names, 1), vec!["l1.large"]);
        assert_eq!(did_you_mean("l1.smal", names, 3)[0], "l1.small");
        assert!(did_you_mean("zzzzzzzzzz", names, 3).is_empty());
    }

    #[test]
    fn huge_inputs_are_cut_not_compared_whole() {
        // A 100,000-character `--type` against a thousand names: the answer is the
        // same as for its head, and comes at once (compared whole it took 11 s).
        let many: Vec<String> = (0..1000).map(|i| format!("m{i}.large")).collect();
        let names: Vec<&str> = many
            .iter()
            .map(String::as_str)
            .chain(["l1.small", "l1.large"])
            .collect();
        let huge = format!("l1.small{}", "x".repeat(100_000));
        assert_eq!(did_you_mean(&huge, names.iter().copied(), 3), vec!["l1.small"]);
        let junk = "q".repeat(100_000);
        assert!(did_you_mean(&junk, names.iter().copied(), 3).is_empty());
        let wide = "é".repeat(100_000);
        assert!(did_you_mean(&wide, names.iter().copied(), 3).is_empty());
    }
}
