//! Routing protocols: OSPFv3.

use crate::topology::Topology;
use std::net::Ipv4Addr;

/// OSPFv3 router ID of node `i`: explicit, else `0.0.0.(i+1)`.
pub(crate) fn router_id(topo: &Topology, i: usize) -> Option<Ipv4Addr> {
    let o = topo.nodes.0.get(i)?.1.ospf6.as_ref()?;
    match &o.router_id {
        Some(r) => r.parse().ok(),
        None => Some(Ipv4Addr::from(i as u32 + 1)),
    }
}
