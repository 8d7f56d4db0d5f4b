//! Per-student values (`vary: prefix`): each student of a class gets a lab with its own IPv6
//! prefixes, so answers cannot be copied from a neighbour.
//!
//! A [`Variation`] is a number from 1 to 255, the student's place in the class's roster (sorted
//! by name), so it depends only on the class and the student: a lab made again after a crash
//! gets the same values, and no two students of a class (up to 255) share them. It selects a
//! `/40` of a `/32` pool (a `/(L+8)` of a `/L` pool): bits `L..L+8` of every address of the pool
//! are the variation. The lab as written (variation 0: those bits zero) is the canonical lab
//! the trainer writes the exercises for; a student's lab is the same lab with every address of
//! the pool moved into the student's block, so `2001:db8:1::100` becomes `2001:db8:301::100` for
//! the third student.
//!
//! Pure: [`Variation::in_roster`] picks the number, [`rewrite`] moves the addresses written in a
//! topology's text (segments, interfaces, routes, NAT64 prefix, exercises, solutions, files),
//! and the planner allocates the segments' prefixes from [`varied_pool`].

use ipnet::Ipv6Net;
use std::net::Ipv6Addr;

/// The pool length `vary: prefix` needs at most: a `/32` leaves a `/40` per student and 255
/// segments (`/48`s) in each.
pub const MAX_POOL_LEN: u8 = 32;

/// A student's variation: 1..=255 (0 is the lab as written).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Variation(u8);

impl Variation {
    /// The variation numbered `n` (1..=255); `None` for 0.
    pub fn new(n: u8) -> Option<Variation> {
        (n > 0).then_some(Variation(n))
    }

    pub fn number(self) -> u8 {
        self.0
    }

    /// The variation of `student` in a class whose students are `roster`: its place in the
    /// roster sorted by name, from 1. `None` when the student is not in the roster or is past
    /// the 255th.
    pub fn in_roster<S: AsRef<str>>(student: &str, roster: &[S]) -> Option<Variation> {
        let mut names: Vec<&str> = roster.iter().map(|s| s.as_ref()).collect();
        names.sort_unstable();
        names.dedup();
        let i = names.iter().position(|s| *s == student)?;
        u8::try_from(i + 1).ok().and_then(Variation::new)
    }
}

/// The comment that names the student's variation in a lab's copy of its topology (kept in
/// every node, so `v6lab check` and `v6lab solve` plan the student's lab from it).
const MARK: &str = "# v6lab: the lab of student ";

/// `text` with the variation `v` noted in a comment at its end (line numbers are kept).
pub fn mark(text: &str, v: Option<Variation>) -> String {
    match v {
        Some(v) if marked(text).is_none() => {
            let sep = if text.ends_with('\n') || text.is_empty() {
                ""
            } else {
                "\n"
            };
            format!("{text}{sep}{MARK}{}\n", v.0)
        }
        _ => text.to_owned(),
    }
}

/// The variation noted by [`mark`] at the end of `text`, if any.
pub fn marked(text: &str) -> Option<Variation> {
    let last = text.lines().rev().find(|l| !l.trim().is_empty())?;
    last.strip_prefix(MARK)?
        .trim()
        .parse()
        .ok()
        .and_then(Variation::new)
}

/// The shift of the variation's 8 bits in an address of a `/len` pool.
fn shift(len: u8) -> u32 {
    128 - u32::from(len) - 8
}

/// The student's block of `pool` (a `/32` gives a `/40`).
pub fn varied_pool(pool: Ipv6Net, v: Variation) -> Ipv6Net {
    debug_assert!(pool.prefix_len() <= MAX_POOL_LEN);
    let base = u128::from(pool.network()) | (u128::from(v.0) << shift(pool.prefix_len()));
    Ipv6Net::new(Ipv6Addr::from(base), pool.prefix_len() + 8).expect("at most /40")
}

/// `addr` moved into the student's block, when it is an address of the lab as written: inside
/// `pool`, with the variation's bits zero. Other addresses are left as they are.
pub fn vary_address(addr: Ipv6Addr, pool: Ipv6Net, v: Variation) -> Ipv6Addr {
    let s = shift(pool.prefix_len());
    let a = u128::from(addr);
    if pool.contains(&addr) && (a >> s) & 0xff == 0 {
        Ipv6Addr::from(a | (u128::from(v.0) << s))
    } else {
        addr
    }
}

/// A topology's text with every IPv6 address of the lab as written moved into the student's
/// block (see [`vary_address`]). Prefixes shorter than the student's block (the pool itself)
/// are left as written. Lines are kept, so diagnostics still point at the right line.
pub fn rewrite(text: &str, pool: Ipv6Net, v: Variation) -> String {
    let is_part = |c: char| c.is_ascii_hexdigit() || c == ':';
    let mut out = String::with_capacity(text.len() + 64);
    let mut rest = text;
    while let Some(start) = rest.find(is_part) {
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let end = rest.find(|c: char| !is_part(c)).unwrap_or(rest.len());
        let (token, after) = rest.split_at(end);
        // A letter or digit right before the token makes it part of a word, not an address.
        let in_word = out
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.');
        let len = after.strip_prefix('/').and_then(|l| {
            let digits = l.find(|c: char| !c.is_ascii_digit()).unwrap_or(l.len());
            l[..digits].parse::<u8>().ok()
        });
        let short = len.is_some_and(|l| l < pool.prefix_len() + 8);
        match token.parse::<Ipv6Addr>() {
            Ok(a) if token.contains(':') && !in_word && !short => {
                let moved = vary_address(a, pool, v);
                if moved == a {
                    out.push_str(token);
                } else {
                    out.push_str(&moved.to_string());
                }
            }
            _ => out.push_str(token),
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> Ipv6Net {
        "2001:db8::/32".parse().unwrap()
    }

    #[test]
    fn the_roster_numbers_students_by_name_from_one() {
        let roster = ["bob", "alice", "carol"];
        assert_eq!(Variation::in_roster("alice", &roster).unwrap().number(), 1);
        assert_eq!(Variation::in_roster("carol", &roster).unwrap().number(), 3);
        assert_eq!(Variation::in_roster("dave", &roster), None);
        let generated: Vec<String> = (1..=30).map(|i| format!("student-{i:02}")).collect();
        for (i, s) in generated.iter().enumerate() {
            assert_eq!(
                Variation::in_roster(s, &generated).unwrap().number() as usize,
                i + 1
            );
        }
        let big: Vec<String> = (0..300).map(|i| format!("s{i:03}")).collect();
        assert!(Variation::in_roster("s254", &big).is_some());
        assert_eq!(Variation::in_roster("s255", &big), None);
    }

    #[test]
    fn addresses_of_the_lab_as_written_move_into_the_students_block() {
        let v = Variation::new(3).unwrap();
        assert_eq!(
            varied_pool(pool(), v),
            "2001:db8:300::/40".parse::<Ipv6Net>().unwrap()
        );
        let text = "ip -6 addr add 2001:db8:1::100/64 dev eth1; route 2001:db8:3::/64 via \
                    2001:db8:2::2; nat64 2001:db8:64::/96; pool 2001:db8::/32; \
                    fe80::1 64:ff9b::/96 3fff::1 192.0.2.1 10:30 02:76:36:00:00:01 abc::1 \
                    x2001:db8:1::1 2001:db8:ff00::1";
        assert_eq!(
            rewrite(text, pool(), v),
            "ip -6 addr add 2001:db8:301::100/64 dev eth1; route 2001:db8:303::/64 via \
             2001:db8:302::2; nat64 2001:db8:364::/96; pool 2001:db8::/32; \
             fe80::1 64:ff9b::/96 3fff::1 192.0.2.1 10:30 02:76:36:00:00:01 abc::1 \
             x2001:db8:1::1 2001:db8:ff00::1"
        );
    }

    #[test]
    fn a_marked_copy_of_the_topology_plans_the_students_lab() {
        let text = varied_topology("ipv6-basics.yaml");
        let copy = mark(&text, Variation::new(5));
        assert_eq!(marked(&copy), Variation::new(5));
        assert_eq!(mark(&copy, Variation::new(6)), copy);
        assert_eq!(marked(&text), None);
        assert_eq!(mark(&text, None), text);
        let (_, p) = crate::replan("t.yaml", copy.as_bytes()).unwrap();
        assert_eq!(p.segments[0].ipv6.unwrap().to_string(), "2001:db8:501::/64");
        assert_eq!(p.nodes, plan_for(&text, 5).nodes);
    }

    #[test]
    fn a_shorter_pool_varies_the_bits_after_it() {
        let pool: Ipv6Net = "3fff::/20".parse().unwrap();
        let v = Variation::new(0xab).unwrap();
        assert_eq!(
            varied_pool(pool, v),
            "3fff:0ab0::/28".parse::<Ipv6Net>().unwrap()
        );
        assert_eq!(
            vary_address("3fff:0:1::1".parse().unwrap(), pool, v),
            "3fff:ab0:1::1".parse::<Ipv6Addr>().unwrap()
        );
    }

    /// A shipped topology with `vary: prefix` added.
    fn varied_topology(file: &str) -> String {
        let path = format!("{}/../../topologies/{file}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(path).unwrap();
        format!("vary: prefix\n{text}")
    }

    fn plan_for(text: &str, v: u8) -> crate::Plan {
        let policy = crate::Policy::default();
        match crate::plan_source_for("t.yaml", text.as_bytes(), &policy, Variation::new(v)) {
            Ok((_, p)) => p,
            Err((s, d)) => panic!("student {v}: {}", d.render(&s.text)),
        }
    }

    /// Two students of a class get valid plans with different prefixes and the same structure:
    /// each is the lab as written with its addresses moved into the student's block.
    #[test]
    fn two_students_get_different_prefixes_and_the_same_lab() {
        // Reverse zones are named by nibbles (`...8.b.d.0.1.0.0.2.ip6.arpa`), which `rewrite`
        // does not read: they are compared apart.
        let nibbles = regex::Regex::new(r"(?:[0-9a-f]\.)+ip6\.arpa").unwrap();
        for file in [
            "ipv6-basics.yaml",
            "static-routing.yaml",
            "nat64-dns64.yaml",
            "dhcpv6.yaml",
            "dual-stack.yaml",
            "ospfv3.yaml",
        ] {
            let text = varied_topology(file);
            let written = plan_for(&text, 0);
            let (a, b) = (plan_for(&text, 1), plan_for(&text, 2));
            let prefixes =
                |p: &crate::Plan| -> Vec<_> { p.segments.iter().filter_map(|s| s.ipv6).collect() };
            assert!(!prefixes(&a).is_empty(), "{file}");
            for (x, y) in prefixes(&a).iter().zip(prefixes(&b)) {
                assert_ne!(*x, y, "{file}: both students have {x}");
                assert!(varied_pool(pool(), Variation(1)).contains(x), "{file}: {x}");
                assert!(
                    varied_pool(pool(), Variation(2)).contains(&y),
                    "{file}: {y}"
                );
            }
            if let (Some(na), Some(nb)) = (&a.nat64, &b.nat64) {
                assert_ne!(na.prefix, nb.prefix, "{file}");
            }
            let json = |p: &crate::Plan| {
                let mut p = p.clone();
                p.topology_hash = String::new();
                serde_json::to_string(&p).unwrap()
            };
            for (v, p) in [(1, &a), (2, &b)] {
                let expected = rewrite(&json(&written), pool(), Variation(v));
                let got = json(p);
                assert_eq!(
                    nibbles.replace_all(&got, "REVERSE"),
                    nibbles.replace_all(&expected, "REVERSE"),
                    "{file}: student {v}"
                );
                let zones = |j: &str| nibbles.find_iter(j).count();
                assert_eq!(zones(&got), zones(&expected), "{file}");
                if zones(&got) > 0 {
                    assert_ne!(got, expected, "{file}: reverse zones of the lab as written");
                }
            }
        }
    }

    #[test]
    fn without_vary_every_student_gets_the_lab_as_written() {
        let path = format!(
            "{}/../../topologies/ipv6-basics.yaml",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(path).unwrap();
        assert_eq!(plan_for(&text, 0), plan_for(&text, 7));
        let varied = varied_topology("ipv6-basics.yaml");
        let lan = |p: &crate::Plan| p.segments[0].ipv6.unwrap().to_string();
        assert_eq!(lan(&plan_for(&varied, 0)), "2001:db8:1::/64");
        assert_eq!(lan(&plan_for(&varied, 7)), "2001:db8:701::/64");
    }

    #[test]
    fn checks_and_solutions_name_the_students_addresses() {
        let p = plan_for(&varied_topology("ipv6-basics.yaml"), 9);
        let json = serde_json::to_string(&p.exercises).unwrap();
        assert!(json.contains("2001:db8:901::100"), "{json}");
        assert!(!json.contains("2001:db8:1::"), "{json}");
    }

    #[test]
    fn vary_refuses_a_long_pool_and_prefixes_that_would_not_move() {
        let text = "name: t\nvary: prefix\npools: {ipv6: 2001:db8:100::/40}\nsegments:\n  lan: ipv6-only\n  dmz: {family: ipv6-only, ipv6: 2001:db8:cafe::/64}\nnodes:\n  r1: {role: router, interfaces: {eth1: lan, eth2: dmz}}\n";
        let refused = |text: &str, says: &str| {
            let policy = crate::Policy::default();
            let (_, d) = crate::plan_source_with("t.yaml", text.as_bytes(), &policy).unwrap_err();
            let msgs: Vec<_> = d.items.iter().map(|i| i.message.clone()).collect();
            assert!(msgs.iter().any(|m| m.contains(says)), "{msgs:?}");
        };
        refused(text, "/32 or shorter");
        let text = text.replace("pools: {ipv6: 2001:db8:100::/40}\n", "");
        refused(&text, "in every student's lab");
        let ok = text.replace("2001:db8:cafe::/64", "2001:db8:ca::/64");
        let p = plan_for(&ok, 4);
        assert_eq!(p.segments[1].ipv6.unwrap().to_string(), "2001:db8:4ca::/64");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 32, ..Default::default() })]

        /// Any student's lab plans, the same every time, inside the student's block, and no
        /// two students share a prefix.
        #[test]
        fn every_student_gets_a_stable_plan_in_their_own_block(a in 1u8..=255, b in 1u8..=255) {
            let text = varied_topology("nat64-dns64.yaml");
            let pa = plan_for(&text, a);
            proptest::prop_assert_eq!(&pa, &plan_for(&text, a));
            let block = varied_pool(pool(), Variation(a));
            for s in &pa.segments {
                if let Some(p) = s.ipv6 {
                    proptest::prop_assert!(block.contains(&p), "{} outside {}", p, block);
                }
            }
            let nat64 = pa.nat64.as_ref().unwrap().prefix;
            proptest::prop_assert!(block.contains(&nat64));
            if a != b {
                let pb = plan_for(&text, b);
                for (x, y) in pa.segments.iter().zip(&pb.segments) {
                    if x.ipv6.is_some() {
                        proptest::prop_assert_ne!(x.ipv6, y.ipv6);
                    }
                }
            }
        }
    }
}
