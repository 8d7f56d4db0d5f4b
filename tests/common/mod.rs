//! Helpers for the real-engine tests: run the `v6lab` binary, name labs uniquely, and remove
//! every lab a test made, also when the test fails.

#![allow(dead_code)]

pub mod hostile;
pub mod serve;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_v6lab")
}

pub fn topology(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../topologies")
        .join(format!("{name}.yaml"))
}

/// Runs `v6lab ARGS`.
pub fn v6lab(args: &[&str]) -> Output {
    Command::new(bin()).args(args).output().expect("run v6lab")
}

/// Runs `v6lab ARGS` and returns its stdout; panics with the output on failure.
pub fn v6lab_ok(args: &[&str]) -> String {
    let o = v6lab(args);
    assert!(
        o.status.success(),
        "v6lab {args:?} failed ({:?}):\n{}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A lab name unique to this test run.
pub fn lab_name(test: &str) -> String {
    format!("t{}-{test}", std::process::id() % 100_000)
}

/// A lab that is removed when dropped.
pub struct Lab {
    pub name: String,
}

impl Lab {
    /// `v6lab up TOPOLOGY --name NAME EXTRA...`, asserting success.
    pub fn up(topology_name: &str, test: &str, extra: &[&str]) -> Lab {
        let lab = Lab {
            name: lab_name(test),
        };
        let t = topology(topology_name);
        let mut args = vec!["up", t.to_str().unwrap(), "--name", &lab.name, "--quiet"];
        args.extend_from_slice(extra);
        v6lab_ok(&args);
        lab
    }

    /// Runs a command in a node: (exit code, stdout, stderr).
    pub fn exec(&self, node: &str, cmd: &str) -> (i32, String, String) {
        let o = v6lab(&["exec", &self.name, node, "--", "sh", "-c", cmd]);
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    /// Runs a command that must succeed; returns stdout.
    pub fn ok(&self, node: &str, cmd: &str) -> String {
        let (code, out, err) = self.exec(node, cmd);
        assert_eq!(
            code, 0,
            "`{cmd}` in {}/{node} failed:\n{out}\n{err}",
            self.name
        );
        out
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = v6lab(&["down", &self.name, "--quiet"]);
    }
}

/// Polls `f` until it returns Some, or panics after `deadline`.
pub fn wait_for<T>(what: &str, deadline: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every host object left of a lab: containers (by label and name), links (by name prefix),
/// as lines for an assertion message.
pub fn leftovers(lab: &str) -> Vec<String> {
    let mut out = Vec::new();
    let by_label = Command::new("docker")
        .args([
            "ps",
            "-a",
            "--format",
            "{{.Names}}",
            "--filter",
            &format!("label=dev.v6lab.lab={lab}"),
        ])
        .output()
        .unwrap();
    let by_name = Command::new("docker")
        .args([
            "ps",
            "-a",
            "--format",
            "{{.Names}}",
            "--filter",
            &format!("name=v6lab-{lab}_"),
        ])
        .output()
        .unwrap();
    for o in [by_label, by_name] {
        assert!(o.status.success(), "docker ps failed");
        out.extend(
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(|l| format!("container {l}")),
        );
    }
    let prefix = v6lab_runtime::names::link_prefix(lab);
    let links = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .unwrap();
    assert!(links.status.success());
    for l in String::from_utf8_lossy(&links.stdout).lines() {
        let name = l
            .split(": ")
            .nth(1)
            .unwrap_or("")
            .split('@')
            .next()
            .unwrap_or("");
        if name.starts_with(&prefix) || l.contains(&format!("alias {lab}/")) {
            out.push(format!("link {name}"));
        }
    }
    out
}

/// The JSON plan of a topology.
pub fn plan_json(topology_name: &str) -> serde_json::Value {
    let t = topology(topology_name);
    serde_json::from_str(&v6lab_ok(&[
        "plan",
        t.to_str().unwrap(),
        "--output",
        "json",
    ]))
    .unwrap()
}
