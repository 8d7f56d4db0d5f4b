//! Exercises on a running lab: run checks (retrying until their deadline) and apply reference
//! solutions. What a check runs and how its output is judged is pure ([`v6lab_core::check`]);
//! this module only executes, through any runtime that can run a command in a node.

use crate::docker::{Docker, Error, ExecOutput};
use crate::from_plan::TOPOLOGY_FILE;
use futures::StreamExt;
use serde::Serialize;
use std::time::{Duration, Instant};
use v6lab_core::check::{self, Output};
use v6lab_core::plan::{CheckPlan, ExercisePlan, Plan};

/// Runs a command in a node of a lab. Docker implements it; Kubernetes will too.
pub trait NodeExec: Sync {
    fn exec_in(
        &self,
        lab: &str,
        node: &str,
        argv: &[String],
    ) -> impl Future<Output = Result<ExecOutput, Error>> + Send;
}

impl NodeExec for Docker {
    async fn exec_in(&self, lab: &str, node: &str, argv: &[String]) -> Result<ExecOutput, Error> {
        self.exec(lab, node, argv).await
    }
}

/// How often a failing check is run again before its deadline.
const RETRY: Duration = Duration::from_millis(500);
/// How many checks run at once in one lab.
const CONCURRENCY: usize = 8;

#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub node: String,
    pub title: String,
    pub passed: bool,
    /// What was seen on the last run.
    pub detail: String,
    /// The topology's message for the student (pass or fail), if any.
    pub message: Option<String>,
    pub attempts: u32,
    pub elapsed_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExerciseResult {
    pub id: String,
    pub title: String,
    pub passed: bool,
    pub checks: Vec<CheckResult>,
}

/// Reads back the topology a lab was started from and plans it again (same topology, same plan).
pub async fn lab_plan<E: NodeExec>(
    rt: &E,
    lab: &str,
    nodes: &[String],
) -> Result<(String, Plan), Error> {
    let mut last = None;
    for n in nodes {
        match rt
            .exec_in(lab, n, &["cat".into(), TOPOLOGY_FILE.into()])
            .await
        {
            Ok(out) if out.exit_code == 0 => {
                let text = out.stdout;
                return match v6lab_core::plan_source(TOPOLOGY_FILE, text.as_bytes()) {
                    Ok((_, plan)) => Ok((text, plan)),
                    Err((src, d)) => Err(Error::InvalidSpec(format!(
                        "the lab's topology no longer plans:\n{}",
                        d.render(&src.text)
                    ))),
                };
            }
            Ok(_) => {}
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or(Error::LabNotFound {
        lab: lab.to_owned(),
    }))
}

/// How long checks are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Patience {
    /// Until each check's own timeout (for convergence): `v6lab check`, "check now".
    UntilTimeout,
    /// One run each: periodic progress polling.
    Once,
}

/// Runs one check until it passes or its deadline passes.
pub async fn run_check<E: NodeExec>(
    rt: &E,
    lab: &str,
    c: &CheckPlan,
    patience: Patience,
) -> CheckResult {
    let start = Instant::now();
    let wait = match patience {
        Patience::UntilTimeout => Duration::from_secs(c.timeout_secs.max(1)),
        Patience::Once => Duration::ZERO,
    };
    let deadline = start + wait;
    let argv = vec!["sh".to_string(), "-c".to_string(), check::command(c)];
    let mut attempts = 0;
    loop {
        attempts += 1;
        let (passed, detail) = match rt.exec_in(lab, &c.node, &argv).await {
            Ok(o) => {
                let v = check::judge(
                    c,
                    &Output {
                        exit_code: o.exit_code,
                        stdout: o.stdout,
                        stderr: o.stderr,
                    },
                );
                (check::passes(c, &v), v.detail)
            }
            Err(e) => (false, e.to_string()),
        };
        if passed || Instant::now() + RETRY >= deadline {
            let message = if passed {
                c.pass.clone()
            } else {
                c.fail.clone()
            };
            let detail = if c.expect_fail && passed {
                format!("fails as expected: {detail}")
            } else if c.expect_fail {
                format!("should fail but: {detail}")
            } else {
                detail
            };
            return CheckResult {
                node: c.node.clone(),
                title: c.title.clone(),
                passed,
                detail,
                message,
                attempts,
                elapsed_ms: start.elapsed().as_millis() as u64,
            };
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// Runs the checks of the exercises (all, or those named), concurrently.
pub async fn run_exercises<E: NodeExec>(
    rt: &E,
    lab: &str,
    plan: &Plan,
    only: Option<&str>,
    patience: Patience,
) -> Vec<ExerciseResult> {
    let exercises: Vec<&ExercisePlan> = plan
        .exercises
        .iter()
        .filter(|e| only.is_none_or(|o| o == e.id))
        .collect();
    let jobs: Vec<(usize, usize, &CheckPlan)> = exercises
        .iter()
        .enumerate()
        .flat_map(|(ei, e)| e.checks.iter().enumerate().map(move |(ci, c)| (ei, ci, c)))
        .collect();
    // Futures collected first (see `Docker::up`: a `Stream::map` closure breaks the Send check).
    let futures: Vec<_> = jobs
        .into_iter()
        .map(|(ei, ci, c)| async move { (ei, ci, run_check(rt, lab, c, patience).await) })
        .collect();
    let mut results: Vec<(usize, usize, CheckResult)> = futures::stream::iter(futures)
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    results.sort_by_key(|(e, c, _)| (*e, *c));
    exercises
        .iter()
        .enumerate()
        .map(|(ei, e)| {
            let checks: Vec<CheckResult> = results
                .iter()
                .filter(|(x, _, _)| *x == ei)
                .map(|(_, _, r)| r.clone())
                .collect();
            ExerciseResult {
                id: e.id.clone(),
                title: e.title.clone(),
                passed: checks.iter().all(|c| c.passed),
                checks,
            }
        })
        .collect()
}

/// The commands of an exercise's reference solution: explicit steps, or the scripts of the
/// parts left to the student.
pub fn solution_steps(plan: &Plan, e: &ExercisePlan) -> Vec<(String, Vec<String>)> {
    if !e.solution.is_empty() {
        return e
            .solution
            .iter()
            .map(|s| {
                (
                    s.node.clone(),
                    vec!["sh".into(), "-c".into(), s.run.clone()],
                )
            })
            .collect();
    }
    e.student
        .iter()
        .filter_map(|r| {
            let (node, part) = r.split_once('/')?;
            let p = plan.node(node)?.parts.iter().find(|p| p.id == part)?;
            Some((node.to_owned(), vec!["sh".into(), p.script.clone()]))
        })
        .collect()
}

/// Applies an exercise's reference solution, step by step; a failing step stops it.
pub async fn solve<E: NodeExec>(
    rt: &E,
    lab: &str,
    plan: &Plan,
    exercise: &str,
) -> Result<Vec<(String, String)>, Error> {
    let Some(e) = plan.exercises.iter().find(|e| e.id == exercise) else {
        let known: Vec<&str> = plan.exercises.iter().map(|e| e.id.as_str()).collect();
        return Err(Error::InvalidSpec(format!(
            "lab {lab} has no exercise `{exercise}`; exercises: {}",
            known.join(", ")
        )));
    };
    let mut done = Vec::new();
    for (node, argv) in solution_steps(plan, e) {
        let out = rt.exec_in(lab, &node, &argv).await?;
        if out.exit_code != 0 {
            return Err(Error::StartFailed {
                lab: lab.into(),
                node,
                command: argv.join(" "),
                exit_code: out.exit_code,
                output: out.combined(),
            });
        }
        done.push((node, argv.join(" ")));
    }
    Ok(done)
}
