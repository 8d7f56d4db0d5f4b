//! Names and references: DNS-safe names, duplicate declarations, and resolving a segment or
//! node name with a suggestion when it is unknown.

use super::Planner;
use crate::diagnostic::Diagnostic;
use crate::sp::Sp;
use crate::structure::did_you_mean;
use crate::topology::{self as t};
use crate::values;

impl Planner<'_> {
    pub(super) fn check_names(&mut self) {
        let topo = self.topo;
        if let Some(problem) = values::dns_label_problem(&topo.name, 40) {
            self.err(
                topo.name.loc,
                format!(
                    "the lab name `{}` is not DNS-safe: {problem}",
                    topo.name.value
                ),
                format!("use e.g. `{}`", values::dns_safe(&topo.name)),
            );
        }
        for (i, (name, _)) in topo.segments.iter().enumerate() {
            if let Some(problem) = values::dns_label_problem(name, 32) {
                self.err(
                    name.loc,
                    format!(
                        "the segment name `{}` is not DNS-safe: {problem}",
                        name.value
                    ),
                    format!("use e.g. `{}`", values::dns_safe(name)),
                );
            }
            if let Some(first) = self.seg_index.insert(name.as_str(), i) {
                let loc = topo.segments.0[first].0.loc;
                self.diags.push(
                    Diagnostic::new(
                        name.loc,
                        format!("segment `{}` is declared twice", name.value),
                    )
                    .related(loc, "first declared here")
                    .hint("rename one of the segments"),
                );
            }
        }
        for (i, (name, node)) in topo.nodes.iter().enumerate() {
            if let Some(problem) = values::dns_label_problem(name, 32) {
                self.err(
                    name.loc,
                    format!("the node name `{}` is not DNS-safe: {problem}", name.value),
                    format!("use e.g. `{}`", values::dns_safe(name)),
                );
            }
            self.node_index.insert(name.as_str(), i);
            for (ifname, _) in node.interfaces.iter() {
                if let Some(problem) = values::ifname_problem(ifname) {
                    self.err(
                        ifname.loc,
                        format!(
                            "`{}` is not a valid interface name: {problem}",
                            ifname.value
                        ),
                        "use short Linux names such as `eth1`, `eth2`",
                    );
                }
            }
        }
    }

    /// Resolves a segment name, reporting an unknown one with a suggestion.
    pub(super) fn segment_ref(&mut self, name: &Sp<String>) -> Option<usize> {
        if let Some(&i) = self.seg_index.get(name.as_str()) {
            return Some(i);
        }
        let known: Vec<&str> = self.topo.segments.iter().map(|(k, _)| k.as_str()).collect();
        let hint = match did_you_mean(name, &known) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("declared segments: {}", known.join(", ")),
        };
        self.err(
            name.loc,
            format!("there is no segment `{}`", name.value),
            hint,
        );
        None
    }

    pub(super) fn node_ref(&mut self, name: &Sp<String>) -> Option<usize> {
        if let Some(&i) = self.node_index.get(name.as_str()) {
            return Some(i);
        }
        let known: Vec<&str> = self.topo.nodes.iter().map(|(k, _)| k.as_str()).collect();
        let hint = match did_you_mean(name, &known) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("declared nodes: {}", known.join(", ")),
        };
        self.err(name.loc, format!("there is no node `{}`", name.value), hint);
        None
    }
}

pub(super) fn iface_segment(d: &t::InterfaceDef) -> &Sp<String> {
    match d {
        t::InterfaceDef::Segment(s) => s,
        t::InterfaceDef::Full(i) => &i.segment,
    }
}
