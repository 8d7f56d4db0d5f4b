//! Every feature the renderer knows, in one topology (`every-feature.yaml`): its full plan,
//! rendered files included, is a snapshot, so a change to rendering shows up as a reviewed diff
//! even for what no sample topology uses.

#[test]
fn every_feature_renders_as_its_snapshot() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/every-feature.yaml");
    let bytes = std::fs::read(path).unwrap();
    let (_, plan) = match v6lab_core::plan_source("every-feature.yaml", &bytes) {
        Ok(x) => x,
        Err((s, d)) => panic!("{}", d.render(&s.text)),
    };
    insta::assert_json_snapshot!("every-feature-plan", plan);
}
