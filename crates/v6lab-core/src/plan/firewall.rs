//! Firewalling: a node's nftables ruleset, and the echo listeners that answer `flow` checks.

use super::{FlowListenerPlan, NodePlan, Planner};
use crate::topology::FlowProtocol;

impl Planner<'_> {
    /// Takes each node's ruleset, and gives every node that a `tcp` or `udp` flow check is sent
    /// to a listener on that port (unless its HTTP server answers there already).
    pub(super) fn plan_firewalls(&mut self, nodes: &mut [NodePlan]) {
        let topo = self.topo;
        for (ni, (_, def)) in topo.nodes.iter().enumerate() {
            nodes[ni].services.firewall = def.firewall.as_ref().map(|f| f.value.clone());
        }
        let flows = topo
            .exercises
            .iter()
            .flat_map(|e| &e.checks)
            .filter_map(|c| c.flow.as_ref());
        for f in flows {
            let protocol = match f.protocol.value {
                FlowProtocol::Tcp => "tcp",
                FlowProtocol::Udp => "udp",
                _ => continue,
            };
            // A missing port is reported with the check.
            let (Some(port), Some(&ti)) = (&f.port, self.node_index.get(f.to.as_str())) else {
                continue;
            };
            let n = &mut nodes[ti];
            if protocol == "tcp"
                && n.services
                    .http
                    .as_ref()
                    .is_some_and(|h| h.port == port.value)
            {
                continue;
            }
            let l = FlowListenerPlan {
                protocol: protocol.into(),
                port: port.value,
                ipv6: n.has_ipv6(),
            };
            if !n.services.flow_listeners.contains(&l) {
                n.services.flow_listeners.push(l);
            }
        }
        for n in nodes.iter_mut() {
            n.services.flow_listeners.sort();
        }
    }
}
