//! The reconciler's decisions, pure: desired labs (the store) and observed labs (the runtime's
//! labels) in, actions out. The controller loop executes them.

use crate::store::{LabRow, LabState};
use std::collections::{BTreeMap, BTreeSet};

/// A lab as the runtime reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub name: String,
    /// Containers present / running, and how many the whole lab has (0 when unknown).
    pub nodes: usize,
    pub running: usize,
    pub expected_nodes: usize,
    /// `cli` or `controller`.
    pub owner: String,
    pub expires: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// The lab's lifetime is over: remove it and forget it.
    Expire(String),
    /// Observed but not desired (its class was deleted, or its creation was abandoned).
    DeleteOrphan(String),
    /// Desired and missing, half-made or failed earlier: (re)create it from scratch.
    Create(String),
    /// Desired, marked ready, but the runtime lost part of it: recreate it.
    Repair(String),
    /// A lab `v6lab up` started: from now on the controller enforces its lifetime.
    Adopt(String),
    /// The lab expires soon: tell the trainer (once).
    Warn(String),
    /// An adopted lab disappeared (someone ran `v6lab down`): forget it.
    Forget(String),
}

impl Action {
    pub fn lab(&self) -> &str {
        match self {
            Action::Expire(l)
            | Action::DeleteOrphan(l)
            | Action::Create(l)
            | Action::Repair(l)
            | Action::Adopt(l)
            | Action::Warn(l)
            | Action::Forget(l) => l,
        }
    }
}

fn whole(o: &Observed) -> bool {
    o.nodes > 0 && o.running == o.nodes && (o.expected_nodes == 0 || o.nodes == o.expected_nodes)
}

/// What to do now. `owner` is this controller's owner label: labs of other controllers are
/// never touched. `busy` labs have an action in flight and are left alone.
pub fn decide(
    now: i64,
    warn_before: i64,
    owner: &str,
    desired: &[LabRow],
    observed: &[Observed],
    busy: &BTreeSet<String>,
) -> Vec<Action> {
    let obs: BTreeMap<&str, &Observed> = observed.iter().map(|o| (o.name.as_str(), o)).collect();
    let mut out = Vec::new();
    for d in desired {
        if busy.contains(&d.name) {
            continue;
        }
        if d.expires <= now {
            out.push(Action::Expire(d.name.clone()));
            continue;
        }
        if !d.warned && d.expires - now <= warn_before {
            out.push(Action::Warn(d.name.clone()));
        }
        let o = obs.get(d.name.as_str());
        if d.adopted {
            // Started by `v6lab up`: only its lifetime is ours to enforce.
            if o.is_none() {
                out.push(Action::Forget(d.name.clone()));
            }
            continue;
        }
        match (d.state, o) {
            (LabState::Ready, Some(o)) if whole(o) => {}
            (LabState::Ready, _) => out.push(Action::Repair(d.name.clone())),
            (LabState::Pending, _) => out.push(Action::Create(d.name.clone())),
            (LabState::Failed, _) if d.next_try <= now => out.push(Action::Create(d.name.clone())),
            (LabState::Failed, _) => {}
        }
    }
    let wanted: BTreeSet<&str> = desired.iter().map(|d| d.name.as_str()).collect();
    for o in observed {
        if wanted.contains(o.name.as_str()) || busy.contains(&o.name) {
            continue;
        }
        if o.owner == owner || o.nodes == 0 {
            // Ours and no longer wanted (its class was deleted, maybe while we were down), or
            // host links without a single container (a killed `up` or `down` left them).
            out.push(Action::DeleteOrphan(o.name.clone()));
        } else if o.owner == "cli" && whole(o) {
            match o.expires {
                Some(e) if e <= now => out.push(Action::DeleteOrphan(o.name.clone())),
                _ => out.push(Action::Adopt(o.name.clone())),
            }
        }
        // Anything else belongs to someone else: another controller, or an `up` in progress.
    }
    out
}

/// Seconds to wait before retrying a lab that failed `attempts` times: 2, 4, 8... up to 60.
pub fn backoff(attempts: i64) -> i64 {
    2i64.saturating_pow(attempts.clamp(1, 6) as u32).min(60)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "controller-test";

    fn lab(name: &str, state: LabState, expires: i64) -> LabRow {
        LabRow {
            name: name.into(),
            class: Some("c".into()),
            student: None,
            topology: String::new(),
            topology_name: "t".into(),
            token: String::new(),
            created: 0,
            expires,
            state,
            attempts: 0,
            next_try: 0,
            last_error: None,
            warned: false,
            complete: false,
            adopted: false,
        }
    }

    fn obs(name: &str, nodes: usize, running: usize, owner: &str) -> Observed {
        Observed {
            name: name.into(),
            nodes,
            running,
            expected_nodes: 3,
            owner: owner.into(),
            expires: Some(1000),
        }
    }

    fn none() -> BTreeSet<String> {
        BTreeSet::new()
    }

    #[test]
    fn creates_missing_and_half_made_labs() {
        let d = [
            lab("a", LabState::Pending, 1000),
            lab("b", LabState::Pending, 1000),
        ];
        let o = [obs("b", 1, 1, ME)];
        assert_eq!(
            decide(10, 60, ME, &d, &o, &none()),
            vec![Action::Create("a".into()), Action::Create("b".into())]
        );
    }

    #[test]
    fn repairs_ready_labs_that_lost_nodes_and_leaves_whole_ones() {
        let d = [
            lab("a", LabState::Ready, 1000),
            lab("b", LabState::Ready, 1000),
            lab("c", LabState::Ready, 1000),
        ];
        let o = [obs("a", 3, 3, ME), obs("b", 3, 2, ME), obs("c", 2, 2, ME)];
        assert_eq!(
            decide(10, 60, ME, &d, &o, &none()),
            vec![Action::Repair("b".into()), Action::Repair("c".into())]
        );
    }

    #[test]
    fn expires_warns_and_deletes_only_its_own_orphans() {
        let d = [
            lab("old", LabState::Ready, 100),
            lab("soon", LabState::Ready, 150),
        ];
        let o = [
            obs("old", 3, 3, ME),
            obs("soon", 3, 3, ME),
            obs("gone", 3, 3, ME),
            obs("other", 3, 3, "controller-other"),
        ];
        let acts = decide(100, 60, ME, &d, &o, &none());
        assert_eq!(
            acts,
            vec![
                Action::Expire("old".into()),
                Action::Warn("soon".into()),
                Action::DeleteOrphan("gone".into())
            ]
        );
    }

    #[test]
    fn adopts_whole_cli_labs_removes_expired_ones_and_leaves_labs_being_made() {
        let mut expired = obs("x", 3, 3, "cli");
        expired.expires = Some(5);
        let o = [obs("cli1", 3, 3, "cli"), expired, obs("half", 1, 1, "cli")];
        assert_eq!(
            decide(10, 60, ME, &[], &o, &none()),
            vec![
                Action::Adopt("cli1".into()),
                Action::DeleteOrphan("x".into())
            ]
        );
    }

    #[test]
    fn links_without_containers_are_swept_whoever_made_them() {
        let links = Observed {
            name: "gone".into(),
            nodes: 0,
            running: 0,
            expected_nodes: 0,
            owner: String::new(),
            expires: None,
        };
        assert_eq!(
            decide(10, 60, ME, &[], std::slice::from_ref(&links), &none()),
            vec![Action::DeleteOrphan("gone".into())]
        );
        // A desired lab with leftover links is created (which clears them first), not deleted.
        let d = [lab("gone", LabState::Pending, 1000)];
        assert_eq!(
            decide(10, 60, ME, &d, &[links], &none()),
            vec![Action::Create("gone".into())]
        );
    }

    #[test]
    fn adopted_labs_are_never_recreated_only_expired_or_forgotten() {
        let mut a = lab("a", LabState::Ready, 1000);
        a.adopted = true;
        assert!(
            decide(
                10,
                60,
                ME,
                std::slice::from_ref(&a),
                &[obs("a", 3, 3, "cli")],
                &none()
            )
            .is_empty()
        );
        assert_eq!(
            decide(10, 60, ME, std::slice::from_ref(&a), &[], &none()),
            vec![Action::Forget("a".into())]
        );
        assert_eq!(
            decide(1000, 60, ME, &[a], &[], &none()),
            vec![Action::Expire("a".into())]
        );
    }

    #[test]
    fn failed_labs_wait_for_their_backoff_and_busy_labs_are_left_alone() {
        let mut f = lab("f", LabState::Failed, 1000);
        f.next_try = 50;
        assert!(decide(10, 60, ME, std::slice::from_ref(&f), &[], &none()).is_empty());
        assert_eq!(
            decide(50, 60, ME, std::slice::from_ref(&f), &[], &none()),
            vec![Action::Create("f".into())]
        );
        let busy = BTreeSet::from(["f".to_string()]);
        assert!(decide(50, 60, ME, &[f], &[obs("f", 1, 1, ME)], &busy).is_empty());
        assert_eq!(backoff(1), 2);
        assert_eq!(backoff(10), 60);
    }
}
