//! Exercises on a running lab: run checks (retrying until their deadline) and apply reference
//! solutions. What a check runs and how its output is judged is pure ([`v6lab_core::check`]);
//! this module only executes, through any [`Runtime`].

use crate::from_plan::TOPOLOGY_FILE;
use crate::runtime::{Error, ExecLimits, Runtime};
use futures::StreamExt;
use serde::Serialize;
use std::time::{Duration, Instant};
use v6lab_core::check::{self, Output};
use v6lab_core::plan::{CheckPlan, ExercisePlan, Plan};

/// How often a failing check is run again before its deadline.
const RETRY: Duration = Duration::from_millis(500);
/// How many checks run at once in one lab.
const CONCURRENCY: usize = 8;
/// Reading a lab's topology back from a node.
const READ_TOPOLOGY: Duration = Duration::from_secs(10);
/// The largest topology read back from a node.
const TOPOLOGY_CAP: usize = 4 << 20;
/// Each step of a reference solution.
const SOLUTION_STEP: Duration = Duration::from_secs(60);
/// The least time one run of a check gets, whatever its timeout: a check's timeout is how long
/// it may take to converge, and a single run may legitimately take a few seconds (`curl -m 5`,
/// a slow engine).
const MIN_RUN: Duration = Duration::from_secs(10);
/// Time added to a lab's check budget for the engine's round trips.
const BUDGET_MARGIN: Duration = Duration::from_secs(5);

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
pub async fn lab_plan(
    rt: &dyn Runtime,
    lab: &str,
    nodes: &[String],
) -> Result<(String, Plan), Error> {
    let mut last = None;
    for n in nodes {
        let limits = ExecLimits::within(READ_TOPOLOGY).with_output_cap(TOPOLOGY_CAP);
        match rt
            .exec(lab, n, &["cat".into(), TOPOLOGY_FILE.into()], limits)
            .await
        {
            Ok(out) if out.exit_code == 0 && out.stopped.is_none() => {
                let text = out.stdout;
                return match v6lab_core::replan(TOPOLOGY_FILE, text.as_bytes()) {
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

/// How long one check may take: its own timeout, at least 1 s.
fn check_timeout(c: &CheckPlan) -> Duration {
    Duration::from_secs(c.timeout_secs.max(1))
}

/// How long one run of a check may take before it is stopped.
fn run_deadline(c: &CheckPlan) -> Duration {
    check_timeout(c).max(MIN_RUN)
}

/// The longest a lab's check run (the exercises named, or all) can take: each wave of
/// [`CONCURRENCY`] checks at most the longest timeout (retries) and one more run, plus a
/// margin. The caller passes a deadline at least this far (or shorter, to cap a hostile lab).
pub fn budget(plan: &Plan, only: Option<&str>) -> Duration {
    let checks: Vec<&CheckPlan> = plan
        .exercises
        .iter()
        .filter(|e| only.is_none_or(|o| o == e.id))
        .flat_map(|e| &e.checks)
        .collect();
    let longest = checks
        .iter()
        .map(|c| check_timeout(c) + run_deadline(c))
        .max()
        .unwrap_or_default();
    let waves = checks.len().div_ceil(CONCURRENCY) as u32;
    longest * waves + BUDGET_MARGIN
}

/// Runs one check until it passes, its timeout passes (see [`Patience`]) or `until` (the
/// lab's run deadline). Every run is bounded (its timeout, at least 10 s; the output cap): a
/// check that hangs or floods its output fails, saying so, and is not run again.
pub async fn run_check(
    rt: &dyn Runtime,
    lab: &str,
    c: &CheckPlan,
    patience: Patience,
    until: Instant,
) -> CheckResult {
    let start = Instant::now();
    let wait = match patience {
        Patience::UntilTimeout => check_timeout(c),
        Patience::Once => Duration::ZERO,
    };
    let deadline = (start + wait).min(until);
    let argv = vec!["sh".to_string(), "-c".to_string(), check::command(c)];
    let mut attempts = 0;
    loop {
        attempts += 1;
        // This run: its own deadline, within the lab's run.
        let run_start = Instant::now();
        let run_until = (run_start + run_deadline(c)).min(until);
        let left = run_until.saturating_duration_since(run_start);
        let mut stopped = false;
        let (passed, detail) = match rt.exec(lab, &c.node, &argv, ExecLimits::within(left)).await {
            Ok(o) if o.timed_out => {
                stopped = true;
                let within = if run_until == until && Instant::now() >= until {
                    "before the lab's checks ran out of time".to_string()
                } else {
                    format!("within {}s", run_deadline(c).as_secs())
                };
                (
                    false,
                    format!("the check did not finish {within}; it was stopped"),
                )
            }
            Ok(o) if o.stopped.is_some() => {
                stopped = true;
                (false, o.stopped.unwrap_or_default())
            }
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
        if passed || stopped || Instant::now() + RETRY >= deadline {
            let message = if passed {
                c.pass.clone()
            } else {
                c.fail.clone()
            };
            let detail = if stopped {
                detail
            } else if c.expect_fail && passed {
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

/// Runs the checks of the exercises (all, or those named), concurrently, until `until` at
/// the latest (see [`budget`]): a check not started by then fails as not run.
pub async fn run_exercises(
    rt: &dyn Runtime,
    lab: &str,
    plan: &Plan,
    only: Option<&str>,
    patience: Patience,
    until: Instant,
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
        .map(|(ei, ci, c)| async move {
            if Instant::now() >= until {
                return (ei, ci, not_run(c));
            }
            (ei, ci, run_check(rt, lab, c, patience, until).await)
        })
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

/// A check the lab's run had no time left for.
fn not_run(c: &CheckPlan) -> CheckResult {
    CheckResult {
        node: c.node.clone(),
        title: c.title.clone(),
        passed: false,
        detail: "not run: the lab's checks ran out of time (a slow check before it)".into(),
        message: c.fail.clone(),
        attempts: 0,
        elapsed_ms: 0,
    }
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
pub async fn solve(
    rt: &dyn Runtime,
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
        let out = rt
            .exec(lab, &node, &argv, ExecLimits::within(SOLUTION_STEP))
            .await?;
        if let Some(reason) = &out.stopped {
            return Err(Error::CommandStopped {
                lab: lab.into(),
                node,
                command: argv.join(" "),
                reason: reason.clone(),
                output: format!("{}\n{}", out.stdout, out.stderr),
            });
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::Fake;
    use crate::runtime::ExecOutput;
    use v6lab_core::plan::CheckKind;

    /// A node per behaviour: `ok` passes, `flood` overflows its output, `hang` and `slow` never
    /// end (the bounded exec answers timed out: `slow` at its deadline, `hang` at once).
    fn fake() -> Fake {
        Fake::new().with_exec(|_lab, node, _argv, limits| {
            let node = node.to_owned();
            Box::pin(async move {
                let mut out = ExecOutput::default();
                match node.as_str() {
                    "flood" => {
                        out.exit_code = -1;
                        out.stdout = "y\n".repeat(limits.output_cap / 2);
                        out.truncated = true;
                        out.stopped =
                            Some("output truncated at 64 KiB; the command was stopped".into());
                    }
                    "hang" | "slow" => {
                        // The bounded exec answers at the deadline ("hang": as if it had passed).
                        if node == "slow" {
                            tokio::time::sleep(limits.deadline).await;
                        }
                        out.exit_code = -1;
                        out.timed_out = true;
                        out.stopped = Some("the command did not finish; it was stopped".into());
                    }
                    _ => {}
                }
                Ok(out)
            })
        })
    }

    fn check(node: &str, timeout_secs: u64) -> CheckPlan {
        CheckPlan {
            node: node.into(),
            title: format!("{node} works"),
            kind: CheckKind::Command {
                command: "true".into(),
                exit: 0,
                stdout_contains: None,
                stdout_regex: None,
                stderr_contains: None,
                stderr_regex: None,
                json_query: None,
                json_equals: None,
                json_contains: None,
            },
            expect_fail: false,
            timeout_secs,
            pass: None,
            fail: None,
        }
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    #[tokio::test]
    async fn a_hung_check_fails_at_its_timeout_saying_so() {
        let r = run_check(
            &fake(),
            "l",
            &check("hang", 1),
            Patience::UntilTimeout,
            far(),
        )
        .await;
        assert!(!r.passed);
        assert_eq!(r.attempts, 1);
        // Each run gets at least 10 s, whatever the check's convergence timeout.
        assert!(
            r.detail
                .contains("the check did not finish within 10s; it was stopped"),
            "{}",
            r.detail
        );
        let r = run_check(&fake(), "l", &check("hang", 30), Patience::Once, far()).await;
        assert!(r.detail.contains("within 30s"), "{}", r.detail);
        // Even an expected failure does not pass by hanging.
        let mut c = check("hang", 1);
        c.expect_fail = true;
        assert!(
            !run_check(&fake(), "l", &c, Patience::Once, far())
                .await
                .passed
        );
    }

    #[tokio::test]
    async fn a_flooding_check_fails_as_truncated_and_is_not_retried() {
        let r = run_check(
            &fake(),
            "l",
            &check("flood", 5),
            Patience::UntilTimeout,
            far(),
        )
        .await;
        assert!(!r.passed);
        assert_eq!(r.attempts, 1);
        assert!(r.detail.contains("output truncated"), "{}", r.detail);
        assert!(
            run_check(&fake(), "l", &check("ok", 5), Patience::Once, far())
                .await
                .passed
        );
    }

    #[tokio::test]
    async fn the_lab_deadline_bounds_its_checks() {
        let until = Instant::now() + Duration::from_millis(300);
        let r = run_check(&fake(), "l", &check("slow", 10), Patience::Once, until).await;
        assert!(!r.passed);
        assert!(r.detail.contains("ran out of time"), "{}", r.detail);
        assert!(Instant::now() < until + Duration::from_secs(1));
    }

    #[test]
    fn budgets_cover_every_wave_of_checks() {
        let mut plan = v6lab_core::plan_source(
            "ipv6-basics.yaml",
            include_bytes!("../../../topologies/ipv6-basics.yaml"),
        )
        .map(|(_, p)| p)
        .unwrap_or_else(|(s, d)| panic!("{}", d.render(&s.text)));
        plan.exercises.clear();
        assert_eq!(budget(&plan, None), BUDGET_MARGIN);
        plan.exercises.push(ExercisePlan {
            id: "e".into(),
            title: "e".into(),
            instructions: String::new(),
            student: vec![],
            passes_initially: false,
            checks: (0..9).map(|i| check("ok", 3 + i)).collect(),
            solution: vec![],
        });
        // 9 checks: two waves of at most 11 s of retries and one more run of 11 s.
        assert_eq!(budget(&plan, None), Duration::from_secs(44) + BUDGET_MARGIN);
        assert_eq!(budget(&plan, Some("other")), BUDGET_MARGIN);
    }
}
