//! Benchmark (prints figures; not a test): parse + validate + plan a generated topology of 500
//! nodes and 200 segments. Goal: under 50 ms on a 2-core machine.
//!
//! Run: `cargo bench -p v6lab-core --bench plan`

use std::fmt::Write as _;
use std::time::Instant;

/// 200 segments (IPv6-only, dual-stack, IPv4-only in turn), 100 routers each joining 3 segments,
/// 400 hosts on one segment each, a server with authoritative DNS, and two exercises.
fn topology(segments: usize, nodes: usize) -> String {
    let fam = ["ipv6-only", "dual-stack", "ipv4-only"];
    let mut y = String::from("name: bench\nsegments:\n");
    for s in 0..segments {
        let _ = writeln!(y, "  s{s}: {}", fam[s % 3]);
    }
    y.push_str("nodes:\n");
    let routers = nodes / 5;
    for r in 0..routers {
        let _ = writeln!(y, "  r{r}:\n    role: router\n    interfaces:");
        for k in 0..3 {
            let _ = writeln!(y, "      eth{}: s{}", k + 1, (r * 2 + k) % segments);
        }
    }
    for h in 0..nodes - routers {
        let _ = writeln!(
            y,
            "  h{h}: {{role: host, interfaces: {{eth1: s{}}}}}",
            h % segments
        );
    }
    y.push_str(
        "exercises:\n  - id: one\n    title: One\n    student: [r0/radvd]\n    checks:\n      - {node: h0, slaac: s0}\n  - id: two\n    title: Two\n    student: [r1/radvd]\n    checks:\n      - {node: h1, ping: r1}\n",
    );
    y
}

fn main() {
    let text = topology(200, 500);
    let runs = 20;
    let mut times = Vec::new();
    let mut plan = None;
    for _ in 0..runs {
        let t = Instant::now();
        let p = v6lab_core::plan_source("bench.yaml", text.as_bytes())
            .map_err(|(s, d)| d.render(&s.text))
            .expect("the generated topology is valid");
        times.push(t.elapsed());
        plan = Some(p.1);
    }
    times.sort();
    let plan = plan.expect("ran");
    let files: usize = plan.nodes.iter().map(|n| n.files.len()).sum();
    println!(
        "parse + validate + plan: {} nodes, {} segments, {} rendered files, {} KiB of YAML",
        plan.nodes.len(),
        plan.segments.len(),
        files,
        text.len() / 1024
    );
    println!(
        "  median {:.1} ms, min {:.1} ms, max {:.1} ms over {runs} runs (goal: under 50 ms on 2 cores)",
        ms(times[runs / 2]),
        ms(times[0]),
        ms(times[runs - 1])
    );
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
