//! One fixture per error kind in tests/fixtures/errors: each states the diagnostics it must
//! produce (`# expect: LINE:COL message`), and no others.

use std::path::{Path, PathBuf};
use v6lab_core::plan_source;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/errors")
}

struct Expect {
    line: u32,
    column: u32,
    message: String,
}

fn expectations(text: &str, tag: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix(&format!("# {tag}: ")))
        .map(str::to_owned)
        .collect()
}

fn parse_expect(s: &str) -> Expect {
    let (pos, message) = s.split_once(' ').expect("LINE:COL message");
    let (line, column) = pos.split_once(':').expect("LINE:COL");
    Expect {
        line: line.parse().unwrap(),
        column: column.parse().unwrap(),
        message: message.to_owned(),
    }
}

#[test]
fn every_fixture_reports_exactly_its_errors() {
    let mut files: Vec<_> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 20, "fixtures missing");
    let mut failures = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let expects: Vec<Expect> = expectations(&text, "expect")
            .iter()
            .map(|s| parse_expect(s))
            .collect();
        assert!(!expects.is_empty(), "{name} states no expectation");
        let diags = match plan_source(&name, text.as_bytes()) {
            Ok(_) => {
                failures.push(format!("{name}: valid, expected errors"));
                continue;
            }
            Err((_, d)) => d,
        };
        let rendered = diags.render(&text);
        for e in &expects {
            let found = diags.items.iter().any(|d| {
                d.loc.line == e.line && d.loc.column == e.column && d.message.contains(&e.message)
            });
            if !found {
                failures.push(format!(
                    "{name}: no error `{}` at {}:{}; got:\n{rendered}",
                    e.message, e.line, e.column
                ));
            }
        }
        if diags.items.len() != expects.len() {
            failures.push(format!(
                "{name}: {} errors, expected {}:\n{rendered}",
                diags.items.len(),
                expects.len()
            ));
        }
        for h in expectations(&text, "expect-hint") {
            if !diags
                .items
                .iter()
                .any(|d| d.hint.as_deref().is_some_and(|x| x.contains(&h)))
            {
                failures.push(format!("{name}: no hint containing `{h}`:\n{rendered}"));
            }
        }
        for r in expectations(&text, "expect-related") {
            let e = parse_expect(&r);
            if !diags.items.iter().flat_map(|d| &d.related).any(|x| {
                x.loc.line == e.line && x.loc.column == e.column && x.message.contains(&e.message)
            }) {
                failures.push(format!(
                    "{name}: no related note `{}` at {}:{}:\n{rendered}",
                    e.message, e.line, e.column
                ));
            }
        }
        // Every rendered error shows file:line:column and a marker.
        for d in &diags.items {
            if d.loc.is_known() {
                assert!(
                    rendered.contains(&format!("{name}:{}:{}", d.loc.line, d.loc.column)),
                    "{rendered}"
                );
            }
            assert!(
                d.hint.is_some(),
                "{name}: error without a hint: {}",
                d.message
            );
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

#[test]
fn not_utf8_is_located() {
    let bytes = b"name: lab\nsegments:\n  l\xffan: ipv6-only\n";
    let (_, d) = plan_source("bin.yaml", bytes).unwrap_err();
    assert_eq!(d.items.len(), 1);
    assert_eq!((d.items[0].loc.line, d.items[0].loc.column), (3, 4));
    assert!(d.items[0].message.contains("not UTF-8"));
}

#[test]
fn files_over_10_mb_are_refused_before_parsing() {
    let mut bytes = b"name: big\n#".to_vec();
    bytes.resize(10 * 1024 * 1024 + 1, b'x');
    let (_, d) = plan_source("big.yaml", &bytes).unwrap_err();
    assert!(
        d.items[0].message.contains("limited to 10 MB"),
        "{:?}",
        d.items
    );
}

#[test]
fn rendering_shows_source_line_and_marker() {
    let text = std::fs::read_to_string(fixtures().join("unknown-key.yaml")).unwrap();
    let (_, d) = plan_source("unknown-key.yaml", text.as_bytes()).unwrap_err();
    let r = d.render(&text);
    assert!(
        r.contains("error: unknown key `famly` in `segments.lan`"),
        "{r}"
    );
    assert!(r.contains("  --> unknown-key.yaml:6:5"), "{r}");
    assert!(r.contains("6 |     famly: ipv6-only\n  |     ^^^^^"), "{r}");
    assert!(r.contains("= hint: did you mean `family`?"), "{r}");
}
