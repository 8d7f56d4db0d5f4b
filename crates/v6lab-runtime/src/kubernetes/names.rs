//! Names of the Kubernetes objects of a lab. Pure.
//!
//! - Node pod: `<lab>-<node>`; switch pod of a segment: `<lab>--<segment>` (node names start with
//!   a letter or digit, so no node pod of a lab is named like its switch pods).
//! - Files of a pod: the ConfigMap `<pod>-files`.
//!
//! Object names must be DNS-1123 labels (lowercase `a-z0-9-`, at most 63 bytes, starting and
//! ending with a letter or digit). A name that is not one as it stands (uppercase, `_` or `.` in
//! a node name, or too long) is lowercased, every other character becomes `-`, and it ends with
//! `-` and 8 hex digits of sha256 of the exact name, cut to fit in 63 bytes: two distinct
//! names never map to one unless their hashes collide.
//!
//! Names are unique within one lab ([`super::render::render`] refuses a clash), not across labs:
//! lab `a-b` node `c` and lab `a` node `b-c` both give `a-b-c`. Labs sharing a namespace must be
//! told apart before creating (or each lab given its own namespace).

use sha2::{Digest, Sha256};

/// Longest DNS-1123 label, in bytes.
pub const LABEL_MAX: usize = 63;
/// Suffix kept room for in a pod's name, so `<pod>-files` is still a label.
pub const FILES_SUFFIX: &str = "-files";

/// Label: the lab's name.
pub const LABEL_LAB: &str = "v6lab.dev/lab";
/// Label: the node's name (node pods only; exact when it is a valid label value).
pub const LABEL_NODE: &str = "v6lab.dev/node";
/// Label: the segment's name (switch pods only).
pub const LABEL_SEGMENT: &str = "v6lab.dev/segment";
/// Label: what an object is: `node`, `switch` or `files`.
pub const LABEL_ROLE: &str = "v6lab.dev/role";

/// Whether `s` is a DNS-1123 label.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= LABEL_MAX
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// `raw` if it is a DNS-1123 label of at most `max` bytes; otherwise a label of at most `max`
/// bytes made from it and ending with a hash of `raw`.
fn label_of(raw: &str, max: usize) -> String {
    if raw.len() <= max && is_dns_label(raw) {
        return raw.to_string();
    }
    let hash = hex::encode(Sha256::digest(raw.as_bytes()));
    let mut base: String = raw
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '-',
        })
        .collect();
    base.truncate(max - 9);
    let base = base.trim_matches('-');
    if base.is_empty() {
        format!("h{}", &hash[..8])
    } else {
        format!("{base}-{}", &hash[..8])
    }
}

/// The pod of node `node` of lab `lab` (room left for [`FILES_SUFFIX`]).
pub fn node_pod(lab: &str, node: &str) -> String {
    label_of(&format!("{lab}-{node}"), LABEL_MAX - FILES_SUFFIX.len())
}

/// The switch pod of segment `segment` of lab `lab`.
pub fn switch_pod(lab: &str, segment: &str) -> String {
    label_of(&format!("{lab}--{segment}"), LABEL_MAX - FILES_SUFFIX.len())
}

/// The ConfigMap holding the files of pod `pod`.
pub fn files_config_map(pod: &str) -> String {
    format!("{pod}{FILES_SUFFIX}")
}

/// A label value for `raw` (label values allow `A-Z`, `_` and `.` too; at most 63 bytes).
pub fn label_value(raw: &str) -> String {
    let ok = raw.len() <= LABEL_MAX
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && raw.starts_with(|c: char| c.is_ascii_alphanumeric())
        && raw.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok || raw.is_empty() {
        raw.to_string()
    } else {
        label_of(raw, LABEL_MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_valid_names_are_kept() {
        assert_eq!(node_pod("nat64-dns64", "client"), "nat64-dns64-client");
        assert_eq!(switch_pod("l1", "lan"), "l1--lan");
        assert_eq!(files_config_map("l1-r1"), "l1-r1-files");
    }

    #[test]
    fn other_names_are_made_labels_with_a_hash() {
        let a = node_pod("l1", "R1");
        let b = node_pod("l1", "r1");
        assert_ne!(a, b, "case must not merge two nodes");
        assert!(is_dns_label(&a), "{a}");
        assert!(a.starts_with("l1-r1-"), "{a}");
        let c = node_pod("l1", "r_1");
        let d = node_pod("l1", "r.1");
        assert_ne!(c, d);
        assert!(is_dns_label(&c) && is_dns_label(&d));
    }

    #[test]
    fn long_names_are_bounded_and_distinct() {
        let lab = "a".repeat(40);
        let n1 = format!("{}1", "n".repeat(62));
        let n2 = format!("{}2", "n".repeat(62));
        let (p1, p2) = (node_pod(&lab, &n1), node_pod(&lab, &n2));
        assert_ne!(p1, p2);
        for p in [&p1, &p2] {
            assert!(p.len() <= LABEL_MAX - FILES_SUFFIX.len(), "{p}");
            assert!(is_dns_label(p), "{p}");
            assert!(is_dns_label(&files_config_map(p)));
        }
        // Exactly at the bound: kept; one byte more: hashed.
        let fit = "x".repeat(LABEL_MAX - FILES_SUFFIX.len() - 3);
        assert_eq!(node_pod("ab", &fit), format!("ab-{fit}"));
        assert_ne!(node_pod("ab", &format!("{fit}y")), format!("ab-{fit}y"));
        assert!(is_dns_label(&switch_pod(&lab, &"s".repeat(63))));
    }

    #[test]
    fn dns_labels() {
        assert!(is_dns_label("a-1"));
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", &"a".repeat(64)] {
            assert!(!is_dns_label(bad), "{bad}");
        }
        assert_eq!(label_value("R_1.x"), "R_1.x");
        assert!(label_value(&"v".repeat(80)).len() <= LABEL_MAX);
    }
}
