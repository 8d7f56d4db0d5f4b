//! The whole pure pipeline: a topology is planned ([`crate::plan`]), its node files rendered
//! from the plan ([`crate::render`]), then its exercises resolved against the rendered parts.
//! Validation happens only in the planner; rendering a plan cannot fail.

use crate::diagnostic::Diagnostics;
use crate::load::Source;
use crate::plan::{Plan, Planner};
use crate::policy::Policy;
use crate::render;
use crate::topology::Topology;
use crate::vary::Variation;

/// Validates and plans a topology against the process's policy ([`crate::policy::current`]).
/// All problems are reported together.
pub fn build(src: &Source, topo: &Topology) -> Result<Plan, Diagnostics> {
    build_with(src, topo, crate::policy::current())
}

/// Validates and plans a topology against `policy`. All problems are reported together.
pub fn build_with(src: &Source, topo: &Topology, policy: &Policy) -> Result<Plan, Diagnostics> {
    build_varied(src, topo, policy, None)
}

/// Validates and plans the lab of the student numbered `variation` (see [`crate::vary`]);
/// `src` and `topo` are already varied ([`plan_source_for`] does both).
fn build_varied(
    src: &Source,
    topo: &Topology,
    policy: &Policy,
    variation: Option<Variation>,
) -> Result<Plan, Diagnostics> {
    let mut p = Planner::new(topo, policy.node_defaults()).with_variation(variation);
    let mut plan = p.plan(src);
    if let Some(max) = policy.segment_mtu {
        cap_mtu(&mut plan, max);
    }
    // Rendered even when planning found problems, so exercises can name the parts that exist.
    let rendered: Vec<_> = plan.nodes.iter().map(|n| render::node(&plan, n)).collect();
    for (node, r) in plan.nodes.iter_mut().zip(rendered) {
        node.parts = r.parts;
        node.files = r.files;
    }
    p.plan_exercises(&mut plan);
    // `up.sh` lists the parts left to students, known only now.
    for node in plan.nodes.iter_mut() {
        let up = render::up_script(node);
        node.files.push(up);
    }
    let mut diags = p.finish();
    diags.extend(crate::policy::check(topo, policy));
    if diags.is_empty() {
        Ok(plan)
    } else {
        Err(Diagnostics::new(&src.file, diags))
    }
}

/// Lowers every segment's and interface's MTU to at most `max`, before anything is rendered
/// from them.
fn cap_mtu(plan: &mut Plan, max: u32) {
    for s in plan.segments.iter_mut() {
        s.mtu = s.mtu.min(max);
    }
    for i in plan.nodes.iter_mut().flat_map(|n| n.interfaces.iter_mut()) {
        i.mtu = i.mtu.min(max);
    }
}

/// Parses, validates and plans in one call, against the process's policy.
pub fn plan_source(file: &str, bytes: &[u8]) -> Result<(Source, Plan), (Source, Diagnostics)> {
    plan_source_with(file, bytes, crate::policy::current())
}

/// Parses, validates and plans in one call, against `policy`.
pub fn plan_source_with(
    file: &str,
    bytes: &[u8],
    policy: &Policy,
) -> Result<(Source, Plan), (Source, Diagnostics)> {
    plan_source_for(file, bytes, policy, None)
}

/// Parses, validates and plans the lab of the student numbered `variation`, against `policy`.
/// A topology without `vary:` (or no variation) gives the lab as written; without
/// `variation`, the one noted in the text ([`crate::vary::mark`]) is used. A varied lab is
/// planned from the topology's text with every address of the lab as written moved into the
/// student's block, so its diagnostics show that text.
pub fn plan_source_for(
    file: &str,
    bytes: &[u8],
    policy: &Policy,
    variation: Option<Variation>,
) -> Result<(Source, Plan), (Source, Diagnostics)> {
    let (src, topo) = crate::load::parse(file, bytes)?;
    let pool = topo
        .pools
        .as_ref()
        .and_then(|p| p.ipv6.as_ref())
        .map(|s| s.parse::<ipnet::Ipv6Net>().map(|n| n.trunc()))
        .unwrap_or_else(|| crate::plan::DEFAULT_IPV6_POOL.parse());
    let variation = variation.or_else(|| crate::vary::marked(&src.text));
    let (v, pool) = match (variation, &topo.vary, pool) {
        (Some(v), Some(_), Ok(pool)) if pool.prefix_len() <= crate::vary::MAX_POOL_LEN => (v, pool),
        // The lab as written; a bad pool is reported there.
        _ => {
            return match build_with(&src, &topo, policy) {
                Ok(plan) => Ok((src, plan)),
                Err(d) => Err((src, d)),
            };
        }
    };
    let text = crate::vary::rewrite(&src.text, pool, v);
    let (src, topo) = crate::load::parse(file, text.as_bytes())?;
    match build_varied(&src, &topo, policy, Some(v)) {
        Ok(plan) => Ok((src, plan)),
        Err(d) => Err((src, d)),
    }
}

/// [`replan`] for the lab of the student numbered `variation`.
pub fn replan_for(
    file: &str,
    bytes: &[u8],
    variation: Option<Variation>,
) -> Result<(Source, Plan), (Source, Diagnostics)> {
    plan_source_for(file, bytes, &Policy::admit_all(), variation)
}

/// Plans again the topology of a lab that already runs (for its checks, solutions, terminals,
/// pages and menus). The lab was admitted by the policy in force when it was made; it is not
/// judged again, so a policy tightened later never breaks a running lab's checks.
pub fn replan(file: &str, bytes: &[u8]) -> Result<(Source, Plan), (Source, Diagnostics)> {
    plan_source_with(file, bytes, &Policy::admit_all())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_mtu_cap_reaches_interfaces_and_router_advertisements() {
        let text = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../topologies/nat64-dns64.yaml"
        ))
        .unwrap();
        let (_, plain) = plan_source_with("t", &text, &Policy::default()).unwrap();
        let capped_policy = Policy::default().with_segment_mtu(Some(1450));
        let (_, capped) = plan_source_with("t", &text, &capped_policy).unwrap();
        assert!(plain.segments.iter().any(|s| s.mtu == 1500));
        assert!(capped.segments.iter().all(|s| s.mtu <= 1450));
        let radvd = |p: &Plan| {
            p.nodes
                .iter()
                .flat_map(|n| &n.files)
                .find(|f| f.path.ends_with("radvd.conf"))
                .map(|f| f.content.clone())
                .unwrap()
        };
        assert!(radvd(&plain).contains("AdvLinkMTU 1500;"));
        assert!(
            radvd(&capped).contains("AdvLinkMTU 1450;"),
            "{}",
            radvd(&capped)
        );
        assert!(
            capped
                .nodes
                .iter()
                .flat_map(|n| &n.interfaces)
                .all(|i| i.mtu <= 1450)
        );
    }
}
