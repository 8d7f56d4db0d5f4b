//! Bringing a node to "ready" once it is wired, the same on every runtime: its start commands
//! in order, each bounded, then its readiness probes polled until they pass or their deadline.
//! Through [`Runtime::exec`] only.

use crate::runtime::{Error, EventKind, ExecLimits, ProbeTimeout, Runtime};
use crate::spec::NodeSpec;
use std::time::{Duration, Instant};

/// How often a failing probe is retried.
const PROBE_INTERVAL: Duration = Duration::from_millis(100);
/// Deadline of the failing probe's last run (for what it prints) after the probes timed out.
const LAST_PROBE_DEADLINE: Duration = Duration::from_secs(5);

/// Runs a node's start commands (each within `start_timeout`), then waits for its probes (all
/// within `probe_timeout`), emitting `NodeConfigured`, `NodeWaiting` and `NodeReady`.
pub(crate) async fn configure(
    rt: &dyn Runtime,
    lab: &str,
    node: &NodeSpec,
    (start_timeout, probe_timeout): (Duration, Duration),
    emit: &(dyn Fn(EventKind) + Sync),
) -> Result<(), Error> {
    let name = || node.name.clone();
    for argv in &node.start {
        let limits = ExecLimits::within(start_timeout);
        let out = rt.exec(lab, &node.name, argv, limits).await?;
        if let Some(reason) = &out.stopped {
            return Err(Error::CommandStopped {
                lab: lab.to_string(),
                node: name(),
                command: show_argv(argv),
                reason: reason.clone(),
                output: format!("{}\n{}", out.stdout, out.stderr),
            });
        }
        if out.exit_code != 0 {
            return Err(Error::StartFailed {
                lab: lab.to_string(),
                node: name(),
                command: show_argv(argv),
                exit_code: out.exit_code,
                output: out.combined(),
            });
        }
    }
    emit(EventKind::NodeConfigured { node: name() });
    await_probes(rt, lab, node, probe_timeout, emit).await?;
    emit(EventKind::NodeReady { node: name() });
    Ok(())
}

/// Polls a node's probes until all pass. One exec per round runs the probes in order and
/// stops at the first failing one (each exec is a round trip to the engine).
async fn await_probes(
    rt: &dyn Runtime,
    lab: &str,
    node: &NodeSpec,
    probe_timeout: Duration,
    emit: &(dyn Fn(EventKind) + Sync),
) -> Result<(), Error> {
    if node.probes.is_empty() {
        return Ok(());
    }
    let deadline = Instant::now() + probe_timeout;
    let script: String = node
        .probes
        .iter()
        .enumerate()
        .map(|(i, p)| {
            format!(
                "{} >/dev/null 2>&1 || {{ echo {i}; exit 1; }}\n",
                shell_words(&p.argv)
            )
        })
        .collect();
    let argv = vec!["sh".to_string(), "-c".to_string(), script];
    let mut waiting: Option<usize> = None;
    loop {
        // Each round's exec is bounded by what is left of the probes' deadline.
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(PROBE_INTERVAL);
        let failing = match rt
            .exec(lab, &node.name, &argv, ExecLimits::within(left))
            .await?
        {
            out if out.stopped.is_some() => waiting.unwrap_or(0),
            out if out.exit_code == 0 => return Ok(()),
            out => out
                .stdout
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|i| *i < node.probes.len())
                .unwrap_or(0),
        };
        if waiting != Some(failing) {
            waiting = Some(failing);
            emit(EventKind::NodeWaiting {
                node: node.name.clone(),
                probe: node.probes[failing].description.clone(),
            });
        }
        if Instant::now() + PROBE_INTERVAL > deadline {
            let probe = &node.probes[failing];
            // The failing probe once more, alone, for what it prints.
            let limits = ExecLimits::within(LAST_PROBE_DEADLINE);
            let last_output = match rt.exec(lab, &node.name, &probe.argv, limits).await {
                Ok(out) => out.combined(),
                Err(e) => format!("(the probe command did not run: {e})"),
            };
            return Err(Error::ProbeTimeout(Box::new(ProbeTimeout {
                lab: lab.to_string(),
                node: node.name.clone(),
                probe: probe.description.clone(),
                command: show_argv(&probe.argv),
                timeout: probe_timeout,
                last_output,
            })));
        }
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
}

/// Shell-like rendering of an argv, for messages.
fn show_argv(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./:=,+@%".contains(&b))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// An argv as one shell command line (each word single-quoted).
fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|w| format!("'{}'", w.replace('\'', "'\\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::shell_words;

    #[test]
    fn quotes_every_word() {
        let argv = vec![
            "sh".to_string(),
            "-c".to_string(),
            "echo 'hi' | grep -q h".to_string(),
        ];
        let line = shell_words(&argv);
        assert_eq!(line, r#"'sh' '-c' 'echo '\''hi'\'' | grep -q h'"#);
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&line)
            .status()
            .unwrap();
        assert!(out.success());
    }
}
