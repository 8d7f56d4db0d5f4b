//! What the administrator allows a topology: resource maxima per node and per lab, and the images
//! nodes may name. Checked during validation ([`crate::build_with`]), so a topology that asks
//! for more is refused, with the location of the offending value, before anything is created.
//!
//! The policy comes from the administrator (`/etc/v6lab/policy.yaml`, `--policy`,
//! `--allow-image`); the binaries install it once at start ([`install`]) and every plan made in
//! the process uses it ([`current`]). Without one, [`Policy::default`] applies.

use crate::diagnostic::Diagnostic;
use crate::sp::{Loc, Sp};
use crate::topology::Topology;
use crate::values;
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

/// A node's limits when its topology gives none (lowered to the policy's per-node maxima).
pub const DEFAULT_MEMORY: u64 = 256 << 20;
pub const DEFAULT_PIDS: u32 = 256;
pub const DEFAULT_CPUS: f64 = 1.0;

/// A node's resource limits, as planned.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LimitsPlan {
    pub memory_bytes: u64,
    pub pids: u32,
    pub cpus: f64,
}

/// Where the administrator's policy file is looked for when no `--policy` is given.
pub const DEFAULT_FILE: &str = "/etc/v6lab/policy.yaml";

/// Directories every node gets as small in-memory file systems (size-limited: what a student can
/// fill there is bounded). They are mounted when the node starts, over whatever the image or the
/// topology put there before, so a topology's `files:` may not go under them.
pub const SCRATCH_DIRS: &[&str] = &["/tmp", "/var/tmp", "/root", "/home"];

/// The scratch directory `path` is in, if any.
pub fn scratch_dir(path: &str) -> Option<&'static str> {
    SCRATCH_DIRS.iter().copied().find(|d| {
        path.strip_prefix(d)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// Resource maxima (per node, or summed over a lab's nodes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Maxima {
    pub memory_bytes: u64,
    pub pids: u32,
    pub cpus: f64,
}

/// The administrator's limits on topologies.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Most a single node may ask for in `limits:`.
    pub node: Maxima,
    /// Most a lab's nodes may ask for together (nodes without `limits:` count their defaults).
    pub lab: Maxima,
    /// Images a node may name in `image:`, besides the lab image (which needs no `image:`).
    pub images: Vec<String>,
    /// Any image is allowed ([`Policy::admit_all`] only; a policy file cannot say so).
    pub any_image: bool,
    /// Where the policy came from, named in hints ("the built-in policy", a file path).
    pub origin: String,
    /// The largest MTU a segment may have where labs run (set by the runtime, not by a policy
    /// file: Kubernetes segments are VXLAN tunnels, 50 bytes below the pod network's MTU).
    /// Segments asking for more get this much, and so do their interfaces and what is rendered
    /// from them (Router Advertisements' MTU).
    pub segment_mtu: Option<u32>,
}

impl Default for Policy {
    /// A node at most 1GiB, 1024 processes, 2 CPUs; a lab at most 16GiB, 16384 processes,
    /// 64 CPUs (64 nodes at the node defaults); no image but the lab image.
    fn default() -> Self {
        Policy {
            node: Maxima {
                memory_bytes: 1 << 30,
                pids: 1024,
                cpus: 2.0,
            },
            lab: Maxima {
                memory_bytes: 16 << 30,
                pids: 16384,
                cpus: 64.0,
            },
            images: Vec::new(),
            any_image: false,
            origin: "the built-in policy".into(),
            segment_mtu: None,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MaximaFile {
    #[serde(default)]
    memory: Option<String>,
    #[serde(default)]
    pids: Option<u32>,
    #[serde(default)]
    cpus: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    node: Option<MaximaFile>,
    #[serde(default)]
    lab: Option<MaximaFile>,
    #[serde(default)]
    images: Vec<String>,
}

/// A policy file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy {origin}: {problem}")]
pub struct PolicyError {
    pub origin: String,
    pub problem: String,
}

impl Policy {
    /// Reads a policy file's text: any of `node:` and `lab:` (each with any of `memory`, `pids`,
    /// `cpus`) and `images:` (a list); what is left out keeps its default. `origin` names the
    /// file in messages and hints.
    pub fn parse(origin: &str, text: &str) -> Result<Policy, PolicyError> {
        let err = |problem: String| PolicyError {
            origin: origin.to_owned(),
            problem,
        };
        let file: PolicyFile = if text.trim().is_empty() {
            PolicyFile::default()
        } else {
            serde_saphyr::from_str(text).map_err(|e| {
                err(format!(
                    "{e} (expected `node:`/`lab:` with `memory`, `pids`, `cpus`, and `images:`)"
                ))
            })?
        };
        let mut policy = Policy {
            origin: origin.to_owned(),
            ..Policy::default()
        };
        for (what, given, max) in [
            ("node", file.node, &mut policy.node),
            ("lab", file.lab, &mut policy.lab),
        ] {
            let Some(given) = given else { continue };
            if let Some(m) = given.memory {
                max.memory_bytes =
                    values::parse_size(&m).map_err(|e| err(format!("{what}.memory `{m}`: {e}")))?;
            }
            if let Some(p) = given.pids {
                max.pids = p;
            }
            if let Some(c) = given.cpus {
                if !(c.is_finite() && c > 0.0) {
                    return Err(err(format!("{what}.cpus must be above 0, not {c}")));
                }
                max.cpus = c;
            }
        }
        policy.images = file.images;
        Ok(policy)
    }

    /// No maxima and any image: for planning a lab that already runs (`check`, `solve`), which
    /// was admitted by the policy in force when it was made.
    pub fn admit_all() -> Self {
        let unbounded = Maxima {
            memory_bytes: u64::MAX,
            pids: u32::MAX,
            cpus: f64::INFINITY,
        };
        Policy {
            node: unbounded,
            lab: unbounded,
            images: Vec::new(),
            any_image: true,
            origin: "a lab that already runs".into(),
            segment_mtu: None,
        }
    }

    /// Limits of a node that sets none: the defaults, lowered to the node maxima.
    pub fn node_defaults(&self) -> LimitsPlan {
        LimitsPlan {
            memory_bytes: DEFAULT_MEMORY.min(self.node.memory_bytes),
            pids: DEFAULT_PIDS.min(self.node.pids),
            cpus: DEFAULT_CPUS.min(self.node.cpus),
        }
    }

    /// Caps every segment's MTU at `mtu` (the runtime's largest).
    pub fn with_segment_mtu(mut self, mtu: Option<u32>) -> Self {
        self.segment_mtu = mtu;
        self
    }

    /// Allows one more image (`--allow-image`).
    pub fn allow_image(&mut self, image: &str) {
        if !self.images.iter().any(|i| i == image) {
            self.images.push(image.to_owned());
        }
    }
}

static INSTALLED: OnceLock<Policy> = OnceLock::new();
static DEFAULT: OnceLock<Policy> = OnceLock::new();

/// Makes `policy` the one every plan of this process is checked against. Only the first call
/// counts; it returns false if a policy was already installed.
pub fn install(policy: Policy) -> bool {
    INSTALLED.set(policy).is_ok()
}

/// The installed policy, or the default one.
pub fn current() -> &'static Policy {
    INSTALLED
        .get()
        .unwrap_or_else(|| DEFAULT.get_or_init(Policy::default))
}

/// `1GiB`, `256MiB`, `1536KiB`, `100B`: the largest unit that divides `bytes`.
pub fn show_size(bytes: u64) -> String {
    for (unit, shift) in [("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    format!("{bytes}B")
}

/// Every way `topo` exceeds `policy`, each at the offending value.
pub fn check(topo: &Topology, policy: &Policy) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    let set_by = format!(
        "the administrator sets the maxima ({}; `v6lab up --policy FILE`, `v6lab serve --policy FILE`)",
        policy.origin
    );
    // The lab's totals, and where each total crossed its maximum.
    let mut memory = 0u64;
    let mut pids = 0u64;
    let mut cpus = 0f64;
    let mut crossed: [Option<Loc>; 3] = [None; 3];
    let defaults = policy.node_defaults();
    for (name, node) in topo.nodes.iter() {
        if let Some(image) = &node.image
            && !policy.any_image
            && !policy.images.iter().any(|i| i == &image.value)
        {
            let allowed = if policy.images.is_empty() {
                "no image besides the lab image is allowed".to_string()
            } else {
                format!(
                    "allowed besides the lab image: {}",
                    policy.images.join(", ")
                )
            };
            diags.push(
                Diagnostic::new(
                    image.loc,
                    format!("node `{}`: image `{}` is not allowed", name.value, image.value),
                )
                .hint(format!(
                    "leave `image:` out to use the lab image ({allowed}); the administrator allows more images ({}: `images:`, or `--allow-image IMAGE`)",
                    policy.origin
                )),
            );
        }
        for f in &node.files {
            if let Some(dir) = scratch_dir(&f.path.value) {
                diags.push(
                    Diagnostic::new(
                        f.path.loc,
                        format!(
                            "node `{}`: `{}` would be hidden: {dir} is an empty, size-limited file system in every node",
                            name.value, f.path.value
                        ),
                    )
                    .hint(format!(
                        "place the file outside {} (e.g. under /etc or /usr/local)",
                        SCRATCH_DIRS.join(", ")
                    )),
                );
            }
        }
        let limits = node.limits.as_ref();
        let at = |v: Option<Loc>| v.unwrap_or(name.loc);
        let node_over = |loc: Loc, what: String, max: String| {
            Diagnostic::new(
                loc,
                format!(
                    "node `{}`: {what} is above the maximum of {max} per node",
                    name.value
                ),
            )
            .hint(format!("write at most `{max}`; {set_by}"))
        };
        // Memory: explicit values the planner rejects are reported there, not here.
        let mem: Option<&Sp<String>> = limits.and_then(|l| l.memory.as_ref());
        let node_memory = match mem.map(|m| (m.loc, values::parse_size(m))) {
            Some((loc, Ok(b))) => {
                if b > policy.node.memory_bytes {
                    diags.push(node_over(
                        loc,
                        format!("memory {}", show_size(b)),
                        show_size(policy.node.memory_bytes),
                    ));
                }
                b
            }
            None | Some((_, Err(_))) => defaults.memory_bytes,
        };
        let pid_value = limits.and_then(|l| l.pids.as_ref());
        let node_pids = pid_value.map_or(defaults.pids, |p| p.value);
        if let Some(p) = pid_value
            && p.value > policy.node.pids
        {
            diags.push(node_over(
                p.loc,
                format!("{} processes", p.value),
                policy.node.pids.to_string(),
            ));
        }
        let cpu_value = limits.and_then(|l| l.cpus.as_ref());
        let node_cpus = cpu_value.map_or(defaults.cpus, |c| c.value);
        if let Some(c) = cpu_value
            && c.value > policy.node.cpus
        {
            diags.push(node_over(
                c.loc,
                format!("{} CPUs", c.value),
                policy.node.cpus.to_string(),
            ));
        }
        memory = memory.saturating_add(node_memory);
        pids = pids.saturating_add(u64::from(node_pids));
        if node_cpus.is_finite() && node_cpus > 0.0 {
            cpus += node_cpus;
        }
        let over = [
            memory > policy.lab.memory_bytes,
            pids > u64::from(policy.lab.pids),
            cpus > policy.lab.cpus,
        ];
        let locs = [
            at(mem.map(|m| m.loc)),
            at(pid_value.map(|p| p.loc)),
            at(cpu_value.map(|c| c.loc)),
        ];
        for k in 0..3 {
            if over[k] && crossed[k].is_none() {
                crossed[k] = Some(locs[k]);
            }
        }
    }
    let totals = [
        (
            "memory",
            format!("{} of memory", show_size(memory)),
            show_size(policy.lab.memory_bytes),
        ),
        (
            "processes",
            format!("{pids} processes"),
            policy.lab.pids.to_string(),
        ),
        ("CPUs", format!("{cpus} CPUs"), policy.lab.cpus.to_string()),
    ];
    for ((what, total, max), loc) in totals.into_iter().zip(crossed) {
        let Some(loc) = loc else { continue };
        diags.push(
            Diagnostic::new(
                loc,
                format!("the lab's nodes ask for {total} in all, above the maximum of {max} per lab"),
            )
            .hint(format!(
                "give the nodes smaller `limits:` ({what} at most {max} in all; nodes without `limits:` count their defaults: {}, {} processes, {} CPU); {set_by}",
                show_size(defaults.memory_bytes),
                defaults.pids,
                defaults.cpus
            )),
        );
    }
    diags
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diags(yaml: &str, policy: &Policy) -> Vec<Diagnostic> {
        let (_, topo) = crate::load::parse("t.yaml", yaml.as_bytes()).unwrap();
        check(&topo, policy)
    }

    const TWO_NODES: &str = "name: t
segments: {lan: ipv6-only}
nodes:
  r1:
    role: router
    interfaces: {eth1: lan}
    limits: {memory: 512MiB, pids: 300, cpus: 1.5}
  h1:
    role: host
    image: example/tools:1
    interfaces: {eth1: lan}
";

    #[test]
    fn within_the_policy_nothing_is_reported() {
        let mut p = Policy::default();
        p.allow_image("example/tools:1");
        assert_eq!(diags(TWO_NODES, &p), vec![]);
    }

    #[test]
    fn node_maxima_and_images_are_located() {
        let p = Policy::parse(
            "policy.yaml",
            "node: {memory: 256MiB, pids: 200, cpus: 1}\nimages: [other/image]\n",
        )
        .unwrap();
        let d = diags(TWO_NODES, &p);
        let got: Vec<(String, &str)> = d
            .iter()
            .map(|d| (d.loc.to_string(), d.message.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "7:22".into(),
                    "node `r1`: memory 512MiB is above the maximum of 256MiB per node"
                ),
                (
                    "7:36".into(),
                    "node `r1`: 300 processes is above the maximum of 200 per node"
                ),
                (
                    "7:47".into(),
                    "node `r1`: 1.5 CPUs is above the maximum of 1 per node"
                ),
                (
                    "10:12".into(),
                    "node `h1`: image `example/tools:1` is not allowed"
                ),
            ]
        );
        assert!(d[0].hint.as_ref().unwrap().contains("policy.yaml"));
        assert!(d[3].hint.as_ref().unwrap().contains("other/image"));
    }

    #[test]
    fn lab_totals_point_where_they_cross() {
        let p = Policy::parse("p", "lab: {memory: 700MiB, pids: 1000, cpus: 2}").unwrap();
        let mut ok = Policy::default();
        ok.allow_image("example/tools:1");
        let d = diags(
            TWO_NODES,
            &Policy {
                images: ok.images,
                ..p
            },
        );
        let got: Vec<String> = d
            .iter()
            .map(|d| format!("{} {}", d.loc, d.message))
            .collect();
        // h1 (no limits: 256MiB, 256 processes, 1 CPU) tips memory and CPUs over, at its name.
        assert_eq!(
            got,
            vec![
                "8:3 the lab's nodes ask for 768MiB of memory in all, above the maximum of 700MiB per lab",
                "8:3 the lab's nodes ask for 2.5 CPUs in all, above the maximum of 2 per lab",
            ]
        );
    }

    #[test]
    fn files_under_scratch_dirs_are_refused() {
        assert_eq!(scratch_dir("/tmp/x"), Some("/tmp"));
        assert_eq!(scratch_dir("/root"), Some("/root"));
        assert_eq!(scratch_dir("/tmpfoo"), None);
        assert_eq!(scratch_dir("/etc/tmp/x"), None);
        let d = diags(
            "name: t\nsegments: {}\nnodes:\n  h1:\n    role: host\n    files:\n      - {path: /root/notes.txt, content: x}\n",
            &Policy::default(),
        );
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].loc.to_string(), "7:16");
        assert!(d[0].message.contains("/root is an empty, size-limited"));
    }

    #[test]
    fn a_running_lab_is_planned_again_whatever_the_policy_says_now() {
        // Admitted when made; a stricter policy later refuses it for new labs only.
        let strict = Policy::parse("p", "node: {memory: 128MiB}\nimages: []").unwrap();
        assert!(crate::plan_source_with("t.yaml", TWO_NODES.as_bytes(), &strict).is_err());
        let (_, plan) = crate::replan("t.yaml", TWO_NODES.as_bytes()).unwrap();
        assert_eq!(plan.nodes.len(), 2);
    }

    #[test]
    fn defaults_never_exceed_the_node_maxima() {
        let p = Policy::parse("p", "node: {memory: 128MiB, pids: 100, cpus: 0.5}").unwrap();
        let d = p.node_defaults();
        assert_eq!((d.memory_bytes, d.pids, d.cpus), (128 << 20, 100, 0.5));
        let yaml = "name: t\nsegments: {lan: ipv6-only}\nnodes:\n  h1: {role: host, interfaces: {eth1: lan}}\n";
        let (src, topo) = crate::load::parse("t.yaml", yaml.as_bytes()).unwrap();
        let plan = crate::build_with(&src, &topo, &p).unwrap();
        assert_eq!(plan.nodes[0].limits.memory_bytes, 128 << 20);
        assert_eq!(plan.nodes[0].limits.pids, 100);
        let plan = crate::build_with(&src, &topo, &Policy::default()).unwrap();
        assert_eq!(plan.nodes[0].limits.memory_bytes, DEFAULT_MEMORY);
    }

    #[test]
    fn policy_files() {
        let p = Policy::parse("f", "").unwrap();
        assert_eq!(p.node, Policy::default().node);
        let p = Policy::parse("f", "lab:\n  memory: 4GiB\nimages: [a, b]\n").unwrap();
        assert_eq!(p.lab.memory_bytes, 4 << 30);
        assert_eq!(p.lab.pids, Policy::default().lab.pids);
        assert_eq!(p.images, vec!["a", "b"]);
        for bad in ["nodes: {}", "node: {memory: lots}", "lab: {cpus: 0}", "[1]"] {
            let e = Policy::parse("/etc/v6lab/policy.yaml", bad).unwrap_err();
            assert!(
                e.to_string().starts_with("policy /etc/v6lab/policy.yaml: "),
                "{e}"
            );
        }
        assert_eq!(show_size(1 << 30), "1GiB");
        assert_eq!(show_size(1536 << 10), "1536KiB");
        assert_eq!(show_size(100), "100B");
    }
}
