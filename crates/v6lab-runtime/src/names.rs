//! Deterministic names and labels of everything the Docker runtime creates. Pure, no IO.
//!
//! - Container: `v6lab-<lab>_<node>` (`_` appears in neither name, so no two labs' names collide).
//! - Lab hash: the first 6 hex characters of sha256(lab name).
//! - Bridge of segment number `s`: `v6l<hash>s<s in hex>`, alias `<lab>/<segment>`.
//! - Host end of the veth of node number `n`, interface number `i`: `v6l<hash>n<n hex>i<i hex>`,
//!   alias `<lab>/<node>/<interface>`. The container end is created directly inside the node's
//!   network namespace under its final name (`eth1`), so it never needs a host-side name.
//!
//! Linux interface names are at most 15 bytes ([`IFNAME_MAX`]); the readable name is the alias.

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

/// The first 6 hex characters of sha256(lab).
pub fn lab_hash(lab: &str) -> String {
    let digest = Sha256::digest(lab.as_bytes());
    hex::encode(&digest[..3])
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
    fit(
        format!("{}s{segment:x}", link_prefix(lab)),
        "segment",
        segment,
    )
}

/// The host end of the veth of interface number `iface` of node number `node`.
pub fn host_veth(lab: &str, node: usize, iface: usize) -> Result<String, NameError> {
    fit(
        format!("{}n{node:x}i{iface:x}", link_prefix(lab)),
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

fn parse_hex(s: &str) -> Option<usize> {
    if s.is_empty()
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    usize::from_str_radix(s, 16).ok()
}

/// Recognizes a host link name made by [`bridge`] or [`host_veth`]; `None` for anything else.
pub fn parse_link(name: &str) -> Option<LinkName> {
    let rest = name.strip_prefix(LINK_PREFIX)?;
    if rest.len() < 8 || !rest.is_char_boundary(6) {
        return None;
    }
    let (hash, rest) = rest.split_at(6);
    parse_hex(hash)?;
    let hash = hash.to_string();
    if let Some(seg) = rest.strip_prefix('s') {
        return Some(LinkName::Bridge {
            hash,
            segment: parse_hex(seg)?,
        });
    }
    let rest = rest.strip_prefix('n')?;
    let (node, iface) = rest.split_once('i')?;
    Some(LinkName::HostVeth {
        hash,
        node: parse_hex(node)?,
        iface: parse_hex(iface)?,
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
    fn hash_is_six_hex_of_sha256() {
        // sha256("abc") = ba7816bf...
        assert_eq!(lab_hash("abc"), "ba7816");
        assert_eq!(lab_hash("abc").len(), 6);
        assert_ne!(lab_hash("lab-1"), lab_hash("lab-2"));
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
        for seg in [0usize, 1, 0xf, 0xff, 0xfff, 0xffff, 0xfffff] {
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
        assert!(bridge(lab, 0x100000).is_err());
        for (node, iface) in [
            (0usize, 0usize),
            (1, 2),
            (0xff, 0xff),
            (0xfff, 0xf),
            (0xf, 0xfff),
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
        assert!(host_veth(lab, 0x1000, 0x10).is_err());
        assert_eq!(bridge("abc", 10).unwrap(), "v6lba7816sa");
        assert_eq!(host_veth("abc", 2, 11).unwrap(), "v6lba7816n2ib");
    }

    #[test]
    fn distinct_indices_give_distinct_names() {
        let mut seen = std::collections::HashSet::new();
        for n in 0..64 {
            for i in 0..64 {
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
            "v6labcdef",
            "v6labcdefs",
            "v6labcdefx1",
            "v6labcdefn1",
            "v6labcdefn1i",
            "v6labcdefnxi1",
            "veth1234",
            "v6lABCDEFs1",
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
