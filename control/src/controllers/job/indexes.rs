//! Completion indexes of Indexed Jobs: the `batch.kubernetes.io/job-completion-index`
//! annotation and label on pods, and the compressed interval text of `status.completedIndexes`
//! (`"1,3-5,7"`).

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Pod;

/// The annotation (and label) carrying a pod's completion index.
pub const INDEX_KEY: &str = "batch.kubernetes.io/job-completion-index";

/// The completion index of a pod, from its annotation (or, failing that, its label).
pub fn pod_index(pod: &Pod) -> Option<u32> {
    let meta = &pod.metadata;
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(INDEX_KEY))
        .or_else(|| meta.labels.as_ref().and_then(|l| l.get(INDEX_KEY)))
        .and_then(|v| v.parse().ok())
}

/// Parses `status.completedIndexes`; malformed parts are skipped.
pub fn parse(text: &str) -> BTreeSet<u32> {
    let mut out = BTreeSet::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) {
                    out.extend(a..=b);
                }
            }
            None => {
                if let Ok(n) = part.parse() {
                    out.insert(n);
                }
            }
        }
    }
    out
}

/// Formats a set of indexes as upstream does: ascending, runs of three or more (and of two)
/// as `a-b`, single values alone.
pub fn format(set: &BTreeSet<u32>) -> String {
    let mut parts = Vec::new();
    let mut iter = set.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end += 1;
            iter.next();
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let set: BTreeSet<u32> = [0, 1, 2, 4, 6, 7].into_iter().collect();
        assert_eq!(format(&set), "0-2,4,6-7");
        assert_eq!(parse("0-2,4,6-7"), set);
        assert_eq!(format(&BTreeSet::new()), "");
        assert_eq!(parse(""), BTreeSet::new());
        assert_eq!(parse("3,x,5"), [3, 5].into_iter().collect());
    }
}
