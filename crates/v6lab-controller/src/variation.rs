//! Per-student values (`vary:` in a topology): each lab of a class is planned with its
//! student's variation, the student's place in the class's roster (see `v6lab_core::vary`).
//! Every place that plans a lab (creation, checks, pages, the access sheet, the API, SSH menus)
//! goes through here, so all of them show and check that student's values.

use crate::store::{LabRow, Store, StoreError};
use v6lab_core::vary::Variation;
use v6lab_core::{Diagnostics, Plan, Policy, Source};

/// The most students a class of a topology with `vary:` may have (each has their own values).
pub const MAX_STUDENTS: usize = 255;

/// A class of `students` of a topology with `vary:`: at most [`MAX_STUDENTS`], and every
/// student's lab plans (the lab as written was checked already).
pub fn check_class(
    file: &str,
    topology: &str,
    students: &[String],
) -> Result<(), (axum::http::StatusCode, String)> {
    use axum::http::StatusCode;
    if !varies(topology) {
        return Ok(());
    }
    if students.len() > MAX_STUDENTS {
        return Err((
            StatusCode::BAD_REQUEST,
            format!(
                "the topology gives each student their own prefixes (`vary:`), for at most {MAX_STUDENTS} students; split the class"
            ),
        ));
    }
    for s in students {
        let v = Variation::in_roster(s, students);
        let policy = v6lab_core::policy::current();
        if let Err((src, d)) = v6lab_core::plan_source_for(file, topology.as_bytes(), policy, v) {
            return Err((
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("the lab of student {s}:\n{}", d.render(&src.text)),
            ));
        }
    }
    Ok(())
}

/// The variation of a lab: its student's place in the roster of its class, recorded when the
/// class was made (so removing one student's lab renumbers nobody); `None` for a lab outside a
/// class.
pub fn variation(store: &Store, l: &LabRow) -> Result<Option<Variation>, StoreError> {
    let (Some(class), Some(student)) = (&l.class, &l.student) else {
        return Ok(None);
    };
    if let Some(n) = store.variation(&l.name)? {
        return Ok(Variation::new(n));
    }
    // A class made before variations were recorded: its roster now.
    let roster: Vec<String> = store
        .class_labs(class)?
        .into_iter()
        .filter_map(|l| l.student)
        .collect();
    Ok(Variation::in_roster(student, &roster))
}

/// Records the variation of every lab of a new class, before its labs are stored (so no lab is
/// ever made without it).
pub fn record(store: &Store, class: &str, students: &[String]) -> Result<(), StoreError> {
    let labs: Vec<(String, u8)> = students
        .iter()
        .filter_map(|s| {
            let v = Variation::in_roster(s, students)?;
            Some((format!("{class}-{s}"), v.number()))
        })
        .collect();
    store.set_variations(&labs)
}

/// The plan of the lab `l` for its student, against `policy`; the error is fit to show.
pub fn plan_lab(store: &Store, l: &LabRow, policy: &Policy) -> Result<(Source, Plan), String> {
    let v = variation(store, l).map_err(|e| e.to_string())?;
    v6lab_core::plan_source_for(&l.topology_name, l.topology.as_bytes(), policy, v)
        .map_err(|(s, d): (Source, Diagnostics)| d.render(&s.text))
}

/// The plan of a lab that already runs, for its student (see `v6lab_core::replan`).
pub fn replan_lab(store: &Store, l: &LabRow) -> Result<Plan, String> {
    plan_lab(store, l, &Policy::admit_all()).map(|(_, p)| p)
}

/// The topology a lab's nodes keep: the class's, with the student's variation noted, so that
/// `v6lab check` and `v6lab solve` plan the student's lab from it.
pub fn node_copy(store: &Store, l: &LabRow) -> Result<String, StoreError> {
    Ok(v6lab_core::vary::mark(&l.topology, variation(store, l)?))
}

/// Whether a topology gives each student of a class their own values (`vary:`).
pub fn varies(topology: &str) -> bool {
    v6lab_core::load::parse("topology", topology.as_bytes()).is_ok_and(|(_, t)| t.vary.is_some())
}

/// The student's own IPv6 prefixes (each segment's, then the NAT64 prefix), for their page and
/// slip; empty when the lab is the lab as written.
pub fn student_prefixes(store: &Store, l: &LabRow, plan: &Plan) -> Vec<serde_json::Value> {
    if !varies(&l.topology) || !matches!(variation(store, l), Ok(Some(_))) {
        return Vec::new();
    }
    let segments = plan
        .segments
        .iter()
        .filter_map(|s| Some((s.name.clone(), s.ipv6?)));
    let nat64 = plan.nat64.iter().map(|n| ("NAT64".to_owned(), n.prefix));
    segments
        .chain(nat64)
        .map(|(name, prefix)| serde_json::json!({"name": name, "prefix": prefix.to_string()}))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LabRow;

    const TOPOLOGY: &str = "name: t\nvary: prefix\nsegments:\n  lan: ipv6-only\nnodes:\n  r1: {role: router, interfaces: {eth1: lan}}\n";

    #[test]
    fn each_student_of_a_class_gets_their_own_prefix() {
        let store = Store::memory().unwrap();
        let lab = |student: &str| LabRow {
            class: Some("c".into()),
            student: Some(student.into()),
            topology: TOPOLOGY.into(),
            ..LabRow::sample(&format!("c-{student}"), "")
        };
        let labs = [lab("bob"), lab("alice")];
        let class = crate::store::ClassRow {
            name: "c".into(),
            topology_name: "t".into(),
            topology: TOPOLOGY.into(),
            created: 1,
            expires: 2,
        };
        record(&store, "c", &["bob".into(), "alice".into(), "carol".into()]).unwrap();
        store.insert_class(&class, &labs).unwrap();
        let prefix = |l: &LabRow| replan_lab(&store, l).unwrap().segments[0].ipv6.unwrap();
        assert_eq!(prefix(&labs[1]).to_string(), "2001:db8:101::/64");
        assert_eq!(prefix(&labs[0]).to_string(), "2001:db8:201::/64");
        // Removing a student's lab renumbers nobody: carol keeps her number 3.
        let carol = lab("carol");
        store.insert_lab(&carol).unwrap();
        assert_eq!(prefix(&carol).to_string(), "2001:db8:301::/64");
        store.delete_lab("c-alice").unwrap();
        assert_eq!(prefix(&carol).to_string(), "2001:db8:301::/64");
        assert_eq!(prefix(&labs[0]).to_string(), "2001:db8:201::/64");
        let copy = node_copy(&store, &labs[0]).unwrap();
        let (_, from_copy) = v6lab_core::replan("t", copy.as_bytes()).unwrap();
        assert_eq!(from_copy.segments[0].ipv6, Some(prefix(&labs[0])));
        let plan = replan_lab(&store, &labs[0]).unwrap();
        let shown = serde_json::to_string(&student_prefixes(&store, &labs[0], &plan)).unwrap();
        assert_eq!(shown, r#"[{"name":"lan","prefix":"2001:db8:201::/64"}]"#);
        // A lab outside a class is the lab as written.
        let single = LabRow {
            topology: TOPOLOGY.into(),
            class: None,
            ..LabRow::sample("single", "")
        };
        assert_eq!(prefix(&single).to_string(), "2001:db8:1::/64");
        let plan = replan_lab(&store, &single).unwrap();
        assert!(student_prefixes(&store, &single, &plan).is_empty());
        assert!(varies(TOPOLOGY));
        let roster: Vec<String> = (1..=3).map(|i| format!("s{i}")).collect();
        assert!(check_class("t", TOPOLOGY, &roster).is_ok());
        let many: Vec<String> = (0..256).map(|i| format!("s{i}")).collect();
        let (code, message) = check_class("t", TOPOLOGY, &many).unwrap_err();
        assert_eq!(code, axum::http::StatusCode::BAD_REQUEST, "{message}");
        assert!(check_class("t", &TOPOLOGY.replace("vary: prefix\n", ""), &many).is_ok());
        assert!(!varies(&TOPOLOGY.replace("vary: prefix\n", "")));
    }
}
