//! Deterministic names and labels of everything the Docker runtime creates. Pure, no IO.
//!
//! - Container: `v6lab-<lab>_<node>` (`_` appears in neither name, so no two labs' names collide).
//! - Lab hash: 8 base-62 characters (`0-9a-zA-Z`) of sha256(lab name), 47.6 bits: 10,000 labs on
//!   one host share a hash with probability below 2.3e-7 (birthday bound, [`collision_bound`]).
//! - Bridge of segment number `s`: `v6l<hash>s<s in base 62, 1 to 3 digits>`, alias
//!   `<lab>/<segment>`.
//! - Host end of the veth of node number `n`, interface number `i`: `v6l<hash>n<n: 2 digits><i:
//!   1 digit>` (base 62), alias `<lab>/<node>/<interface>`. The container end is created directly
//!   inside the node's network namespace under its final name (`eth1`), so it never needs a
//!   host-side name.
//!
//! Linux interface names are at most 15 bytes ([`IFNAME_MAX`]); every name above is at most
//! 3 + 8 + 4 = 15 bytes, and the readable name is the alias. Links named by the earlier 6-hex
//! hash are not recognized (no name of that form parses as one of these): remove such labs with
//! the version that made them before upgrading.

use sha2::{Digest, Sha256};

/// Longest Linux interface name, in bytes (`IFNAMSIZ - 1`).
pub const IFNAME_MAX: usize = 15;
/// Longest lab name, in bytes.
pub const LAB_NAME_MAX: usize = 40;
/// Prefix of every container name.
pub const CONTAINER_PREFIX: &str = "v6lab-";
/// Prefix of every host link (bridge or veth).
pub const LINK_PREFIX: &str = "v6l";

/// Label: the lab's name.
pub const LABEL_LAB: &str = "dev.v6lab.lab";
/// Label: the node's name.
pub const LABEL_NODE: &str = "dev.v6lab.node";
/// Label: the topology's name.
pub const LABEL_TOPOLOGY: &str = "dev.v6lab.topology";
/// Label: hash of the topology source.
pub const LABEL_TOPOLOGY_HASH: &str = "dev.v6lab.topology-hash";
/// Label: unix seconds at which the lab expires (absent: never).
pub const LABEL_EXPIRES: &str = "dev.v6lab.expires";
/// Label: `true` on everything v6lab made.
pub const LABEL_MANAGED: &str = "dev.v6lab.managed";
/// Who manages the lab: `cli` or `controller`.
pub const LABEL_OWNER: &str = "dev.v6lab.owner";
/// How many nodes the whole lab has.
pub const LABEL_NODES: &str = "dev.v6lab.nodes";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error(
        "lab name {0:?} is invalid: use 1 to 40 characters of a-z, 0-9 and '-', not starting or ending with '-'"
    )]
    InvalidLab(String),
    #[error(
        "node name {0:?} is invalid: use 1 to 63 characters of a-z, A-Z, 0-9, '-', '_' and '.', starting with a letter or digit"
    )]
    InvalidNode(String),
    #[error(
        "interface name {0:?} is invalid: use 1 to 15 bytes without '/', ':', whitespace; not '.' or '..'"
    )]
    InvalidInterface(String),
    #[error("too many segments or interfaces for 15-byte link names ({what} number {index})")]
    TooMany { what: &'static str, index: usize },
    #[error("MAC address {0:?} is invalid: expected six hex octets like 02:00:00:00:00:01")]
    InvalidMac(String),
}

/// Checks a lab name: `[a-z0-9-]`, 1 to 40 bytes, not starting or ending with `-`.
pub fn check_lab(lab: &str) -> Result<(), NameError> {
    let ok = !lab.is_empty()
        && lab.len() <= LAB_NAME_MAX
        && lab
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !lab.starts_with('-')
        && !lab.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(NameError::InvalidLab(lab.to_string()))
    }
}

/// Checks a node name: usable in a container name and as a hostname.
pub fn check_node(node: &str) -> Result<(), NameError> {
    let ok = !node.is_empty()
        && node.len() <= 63
        && node.as_bytes()[0].is_ascii_alphanumeric()
        && node
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(NameError::InvalidNode(node.to_string()))
    }
}

/// Checks a Linux interface name (what the kernel's `dev_valid_name` accepts).
pub fn check_interface(name: &str) -> Result<(), NameError> {
    let ok = !name.is_empty()
        && name.len() <= IFNAME_MAX
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(NameError::InvalidInterface(name.to_string()))
    }
}

/// Digits of the lab hash and of the indices in link names: `0-9a-zA-Z`.
const BASE62: &[u8; 62] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
/// Length of the lab hash, in characters.
pub const HASH_LEN: usize = 8;
/// Most segments a lab's bridges can number (3 base-62 digits).
pub const MAX_SEGMENTS: usize = 62 * 62 * 62;
/// Most nodes a lab's veths can number (2 base-62 digits).
pub const MAX_NODES: usize = 62 * 62;
/// Most interfaces per node a lab's veths can number (1 base-62 digit).
pub const MAX_INTERFACES: usize = 62;

/// Upper bound of the probability that any two of `labs` lab names share a hash (birthday bound:
/// pairs / number of hashes).
pub fn collision_bound(labs: u64) -> f64 {
    let pairs = labs as f64 * labs.saturating_sub(1) as f64 / 2.0;
    pairs / 62f64.powi(HASH_LEN as i32)
}

/// 8 base-62 characters of sha256(lab).
pub fn lab_hash(lab: &str) -> String {
    let digest = Sha256::digest(lab.as_bytes());
    let mut n = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    (0..HASH_LEN)
        .map(|_| {
            let d = BASE62[(n % 62) as usize] as char;
            n /= 62;
            d
        })
        .collect()
}

/// `n` in base 62, at least `width` digits.
fn base62(mut n: usize, width: usize) -> String {
    let mut out = Vec::new();
    while n > 0 || out.len() < width {
        out.push(BASE62[n % 62]);
        n /= 62;
    }
    out.reverse();
    String::from_utf8(out).expect("ASCII")
}

fn parse_base62(s: &str) -> Option<usize> {
    if s.is_empty() {
        return None;
    }
    s.bytes().try_fold(0usize, |acc, b| {
        let d = BASE62.iter().position(|&c| c == b)?;
        acc.checked_mul(62)?.checked_add(d)
    })
}

/// `v6lab-<lab>_<node>`. Lab and node names are DNS labels (no `_`): `v6lab-a-b_c` can only be
/// node `c` of lab `a-b`.
pub fn container(lab: &str, node: &str) -> String {
    format!("{CONTAINER_PREFIX}{lab}_{node}")
}

/// `v6lab-<lab>_`: exactly the containers of the lab start with it.
pub fn container_prefix(lab: &str) -> String {
    format!("{CONTAINER_PREFIX}{lab}_")
}

/// `v6l<hash>`: every host link of the lab starts with it.
pub fn link_prefix(lab: &str) -> String {
    format!("{LINK_PREFIX}{}", lab_hash(lab))
}

fn fit(name: String, what: &'static str, index: usize) -> Result<String, NameError> {
    if name.len() <= IFNAME_MAX {
        Ok(name)
    } else {
        Err(NameError::TooMany { what, index })
    }
}

/// The bridge of segment number `segment` (its position in the spec).
pub fn bridge(lab: &str, segment: usize) -> Result<String, NameError> {
    if segment >= MAX_SEGMENTS {
        return Err(NameError::TooMany {
            what: "segment",
            index: segment,
        });
    }
    fit(
        format!("{}s{}", link_prefix(lab), base62(segment, 1)),
        "segment",
        segment,
    )
}

/// The host end of the veth of interface number `iface` of node number `node`.
pub fn host_veth(lab: &str, node: usize, iface: usize) -> Result<String, NameError> {
    if node >= MAX_NODES {
        return Err(NameError::TooMany {
            what: "node",
            index: node,
        });
    }
    if iface >= MAX_INTERFACES {
        return Err(NameError::TooMany {
            what: "interface",
            index: iface,
        });
    }
    fit(
        format!(
            "{}n{}{}",
            link_prefix(lab),
            base62(node, 2),
            base62(iface, 1)
        ),
        "node/interface",
        node.max(iface),
    )
}

/// Alias of a bridge: `<lab>/<segment>`.
pub fn bridge_alias(lab: &str, segment: &str) -> String {
    format!("{lab}/{segment}")
}

/// Alias of a host veth: `<lab>/<node>/<interface>`.
pub fn veth_alias(lab: &str, node: &str, iface: &str) -> String {
    format!("{lab}/{node}/{iface}")
}

/// What a host link name made by v6lab denotes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkName {
    Bridge {
        hash: String,
        segment: usize,
    },
    HostVeth {
        hash: String,
        node: usize,
        iface: usize,
    },
}

impl LinkName {
    pub fn hash(&self) -> &str {
        match self {
            LinkName::Bridge { hash, .. } | LinkName::HostVeth { hash, .. } => hash,
        }
    }
}

/// Recognizes a host link name made by [`bridge`] or [`host_veth`]; `None` for anything else.
pub fn parse_link(name: &str) -> Option<LinkName> {
    let rest = name.strip_prefix(LINK_PREFIX)?;
    if name.len() > IFNAME_MAX || !rest.is_ascii() || rest.len() < HASH_LEN + 2 {
        return None;
    }
    let (hash, rest) = rest.split_at(HASH_LEN);
    parse_base62(hash)?;
    let hash = hash.to_string();
    if let Some(seg) = rest.strip_prefix('s') {
        return Some(LinkName::Bridge {
            hash,
            segment: parse_base62(seg).filter(|_| seg.len() <= 3)?,
        });
    }
    let rest = rest.strip_prefix('n')?;
    if rest.len() != 3 {
        return None;
    }
    let (node, iface) = rest.split_at(2);
    Some(LinkName::HostVeth {
        hash,
        node: parse_base62(node)?,
        iface: parse_base62(iface)?,
    })
}

/// Parses `02:00:5e:10:00:01` (or with `-`) into six octets.
pub fn parse_mac(mac: &str) -> Result<[u8; 6], NameError> {
    let err = || NameError::InvalidMac(mac.to_string());
    let mut out = [0u8; 6];
    let mut parts = mac.split([':', '-']);
    for byte in out.iter_mut() {
        let part = parts.next().ok_or_else(err)?;
        if part.len() != 2 {
            return Err(err());
        }
        *byte = u8::from_str_radix(part, 16).map_err(|_| err())?;
    }
    if parts.next().is_some() {
        return Err(err());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_eight_base62_of_sha256() {
        // sha256("abc") = ba7816bf 8f01cfea ...: 0xba7816bf8f01cfea in base 62, low digit first.
        let mut n: u64 = 0xba78_16bf_8f01_cfea;
        let expected: String = (0..8)
            .map(|_| {
                let d = BASE62[(n % 62) as usize] as char;
                n /= 62;
                d
            })
            .collect();
        assert_eq!(lab_hash("abc"), expected);
        assert_eq!(lab_hash("abc").len(), HASH_LEN);
        assert!(lab_hash("abc").bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(lab_hash("lab-1"), lab_hash("lab-2"));
    }

    #[test]
    fn ten_thousand_labs_collide_with_probability_below_one_in_a_million() {
        // Birthday bound: P(any two of n share a hash) <= n(n-1)/2 / 62^8.
        let p = collision_bound(10_000);
        println!("P(collision among 10,000 labs) <= {p:.2e}");
        assert!(p < 1e-6, "{p}");
        assert!(62f64.powi(HASH_LEN as i32).log2() >= 46.0);
        // And a classroom's worth of real names: no two share a hash.
        let mut seen = std::collections::HashSet::new();
        for class in 0..100 {
            for student in 0..100 {
                let lab = format!("class-{class}-student-{student}");
                assert!(seen.insert(lab_hash(&lab)), "{lab}");
            }
        }
    }

    #[test]
    fn every_link_name_fits_in_fifteen_bytes() {
        let lab = "a-rather-long-lab-name-for-a-class-of-40";
        for seg in [0, MAX_SEGMENTS - 1] {
            assert!(bridge(lab, seg).unwrap().len() <= IFNAME_MAX);
        }
        assert!(bridge(lab, MAX_SEGMENTS).is_err());
        for (n, i) in [(0, 0), (MAX_NODES - 1, MAX_INTERFACES - 1)] {
            assert_eq!(host_veth(lab, n, i).unwrap().len(), IFNAME_MAX);
        }
        assert!(host_veth(lab, MAX_NODES, 0).is_err());
        assert!(host_veth(lab, 0, MAX_INTERFACES).is_err());
        // Names made by the 6-hex scheme are never taken for names of this one.
        for old in [
            "v6lba7816sa",
            "v6lba7816s1fff",
            "v6lba7816n2ib",
            "v6lba7816nffiff",
        ] {
            assert_eq!(parse_link(old), None, "{old}");
        }
    }

    #[test]
    fn container_names() {
        assert_eq!(container("class-a-01", "router"), "v6lab-class-a-01_router");
        // Lab `c-a` node `b-h1` and lab `c-a-b` node `h1` used to share a name.
        assert_ne!(container("c-a", "b-h1"), container("c-a-b", "h1"));
        assert!(!container("c-a-b", "h1").starts_with(&container_prefix("c-a")));
        assert!(container("x", "r").starts_with(&container_prefix("x")));
    }

    #[test]
    fn link_names_fit_and_round_trip() {
        let lab = "a-rather-long-lab-name-for-a-class-of-40";
        assert_eq!(lab.len(), 40);
        let h = lab_hash(lab);
        for seg in [0usize, 1, 61, 62, 3843, 3844, MAX_SEGMENTS - 1] {
            let b = bridge(lab, seg).unwrap();
            assert!(b.len() <= IFNAME_MAX, "{b}");
            assert_eq!(
                parse_link(&b),
                Some(LinkName::Bridge {
                    hash: h.clone(),
                    segment: seg
                })
            );
        }
        for (node, iface) in [
            (0usize, 0usize),
            (1, 2),
            (61, 61),
            (62, 0),
            (MAX_NODES - 1, 7),
        ] {
            let v = host_veth(lab, node, iface).unwrap();
            assert!(v.len() <= IFNAME_MAX, "{v}");
            assert_eq!(
                parse_link(&v),
                Some(LinkName::HostVeth {
                    hash: h.clone(),
                    node,
                    iface
                })
            );
        }
        let h = lab_hash("abc");
        assert_eq!(bridge("abc", 10).unwrap(), format!("v6l{h}sa"));
        assert_eq!(host_veth("abc", 2, 11).unwrap(), format!("v6l{h}n02b"));
        assert_eq!(host_veth("abc", 63, 36).unwrap(), format!("v6l{h}n11A"));
    }

    #[test]
    fn distinct_indices_give_distinct_names() {
        let mut seen = std::collections::HashSet::new();
        for n in 0..62 {
            for i in 0..62 {
                assert!(seen.insert(host_veth("l", n, i).unwrap()));
            }
        }
        for s in 0..256 {
            assert!(seen.insert(bridge("l", s).unwrap()));
        }
    }

    #[test]
    fn foreign_links_are_not_ours() {
        for name in [
            "eth0",
            "docker0",
            "v6l",
            "v6lzzzzzzs1",
            "v6labcdefgh",
            "v6labcdefghs",
            "v6labcdefghx1",
            "v6labcdefghn1",
            "v6labcdefghn12",
            "v6labcdefghn1234",
            "v6labcdefghs1234",
            "v6labcdef-hs1",
            "veth1234",
        ] {
            assert_eq!(parse_link(name), None, "{name}");
        }
    }

    #[test]
    fn aliases_are_readable() {
        assert_eq!(bridge_alias("lab1", "lan"), "lab1/lan");
        assert_eq!(veth_alias("lab1", "r1", "eth1"), "lab1/r1/eth1");
    }

    #[test]
    fn name_checks() {
        check_lab("class-7-student-12").unwrap();
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", &"x".repeat(41)] {
            assert!(check_lab(bad).is_err(), "{bad:?}");
        }
        check_node("router-1").unwrap();
        check_node("R1_b.x").unwrap();
        for bad in ["", "-r", "a/b", "a b"] {
            assert!(check_node(bad).is_err(), "{bad:?}");
        }
        check_interface("eth1").unwrap();
        for bad in ["", ".", "..", "a/b", "a:b", "a b", "sixteen-bytes-xx"] {
            assert!(check_interface(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn macs() {
        assert_eq!(
            parse_mac("02:00:5e:10:00:ff").unwrap(),
            [2, 0, 0x5e, 0x10, 0, 0xff]
        );
        assert_eq!(
            parse_mac("02-00-5E-10-00-FF").unwrap(),
            [2, 0, 0x5e, 0x10, 0, 0xff]
        );
        for bad in [
            "",
            "02:00:5e:10:00",
            "02:00:5e:10:00:ff:01",
            "2:00:5e:10:00:ff",
            "zz:00:5e:10:00:ff",
        ] {
            assert!(parse_mac(bad).is_err(), "{bad:?}");
        }
    }
}
