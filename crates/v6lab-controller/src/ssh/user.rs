//! The SSH user name: who the client says it is, and where it wants to go.
//!
//! ```text
//! user   = name [ "+" node ]
//! name   = a lab's student name (in a class), a lab's name, or `admin`
//! node   = a node of that lab
//! ```
//! Names are DNS-style labels (letters, digits, `-`, `_`, `.`), compared lower-case. The password
//! is a token: a student's token opens only the lab whose student or lab name is `name`; the
//! administrator's opens any lab by its name, and `admin` alone gives a menu of every lab.

/// A parsed user name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The student, lab or `admin` part, lower-case.
    pub name: String,
    /// The node, when the user name names one.
    pub node: Option<String>,
}

/// The user name of the administrator's lab menu.
pub const ADMIN: &str = "admin";

/// Longest accepted part (lab names are at most 40 characters, node names shorter).
const MAX_PART: usize = 64;

fn part_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_PART
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Parses `NAME` or `NAME+NODE`; `None` when it is neither.
pub fn parse(user: &str) -> Option<Target> {
    let (name, node) = match user.split_once('+') {
        Some((n, node)) => (n, Some(node)),
        None => (user, None),
    };
    if !part_ok(name) || !node.is_none_or(part_ok) {
        return None;
    }
    Some(Target {
        name: name.to_ascii_lowercase(),
        node: node.map(str::to_owned),
    })
}

/// What may go into a log line: the user name when it looks like one, never anything that may
/// be a token typed into the wrong field.
pub fn loggable(user: &str) -> &str {
    let lower = user.to_ascii_lowercase();
    if parse(user).is_some() && !lower.contains("v6s_") && !lower.contains("v6a_") {
        user
    } else {
        "<not a user name>"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, node: Option<&str>) -> Option<Target> {
        Some(Target {
            name: name.into(),
            node: node.map(Into::into),
        })
    }

    #[test]
    fn names_and_nodes() {
        assert_eq!(parse("student-01"), t("student-01", None));
        assert_eq!(parse("student-01+h1"), t("student-01", Some("h1")));
        assert_eq!(parse("Alice+r1"), t("alice", Some("r1")));
        assert_eq!(parse("admin"), t("admin", None));
        assert_eq!(parse("c1-student-01+r1"), t("c1-student-01", Some("r1")));
    }

    #[test]
    fn malformed_names_are_refused() {
        for bad in [
            "", "+", "a+", "+h1", "a+b+c", "a b", "a/b", "a;b", "é", "a+h 1",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
        assert_eq!(parse(&"a".repeat(65)), None);
    }

    #[test]
    fn tokens_never_reach_the_log() {
        assert_eq!(loggable("student-01+h1"), "student-01+h1");
        assert_eq!(loggable("v6s_0123abcd"), "<not a user name>");
        assert_eq!(loggable("V6A_0123abcd"), "<not a user name>");
        assert_eq!(loggable("x y"), "<not a user name>");
    }
}
