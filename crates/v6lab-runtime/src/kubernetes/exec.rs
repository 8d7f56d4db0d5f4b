//! Commands in pods through the API server's `exec` (a WebSocket through the kubelet): captured
//! and bounded, streamed, and interactive with a TTY.
//!
//! The bounds hold on v6lab's side whatever runs in the pod: output is read up to the cap and no
//! further, and at the deadline the connection is dropped. Every command runs with a mark in its
//! environment (`V6LAB_EXEC=<mark>`, inherited by what it starts); when a command is stopped, a
//! second exec in the same container stops (SIGSTOP) then kills every process carrying the mark.
//! Unlike on Docker (where the host signals the processes), that kill runs with the pod's own
//! tools: a student who is root in the pod can defeat it, and only their own pod's CPU and
//! memory limits then bound what keeps running. v6lab's own bounds never depend on it.

use crate::docker::kill::{MARK_VAR, new_mark};
use crate::runtime::{ExecLimits, ExecOutput, Pipes, Streamed, Terminal};
use futures::{SinkExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::api::{Api, AttachParams, AttachedProcess, TerminalSize};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long the kill of a stopped command may take.
const KILL_DEADLINE: Duration = Duration::from_secs(10);
/// Buffer of each stream between the WebSocket and v6lab (the connection waits when it is full).
const STREAM_BUFFER: usize = 32 * 1024;

/// The exit code in the status an exec ends with: `Success` is 0, `NonZeroExitCode` carries its
/// code in a cause; anything else (the command could not start) is `None`, with the message.
pub fn exit_code(status: &Status) -> Result<i64, String> {
    if status.status.as_deref() == Some("Success") {
        return Ok(0);
    }
    let code = status
        .details
        .as_ref()
        .and_then(|d| d.causes.as_ref())
        .into_iter()
        .flatten()
        .find(|c| c.reason.as_deref() == Some("ExitCode"))
        .and_then(|c| c.message.as_deref()?.parse().ok());
    match code {
        Some(c) if status.reason.as_deref() == Some("NonZeroExitCode") => Ok(c),
        _ => Err(status
            .message
            .clone()
            .unwrap_or_else(|| "the command ended without an exit status".into())),
    }
}

/// `argv` with the mark in its environment.
fn marked(argv: &[String], mark: &str) -> Vec<String> {
    let mut out = vec!["env".to_string(), format!("{MARK_VAR}={mark}")];
    out.extend(argv.iter().cloned());
    out
}

/// The script that stops, then kills, every process of the container carrying `mark`.
pub fn kill_script(mark: &str) -> String {
    // The mark is hex and `-`: nothing to quote.
    let want = format!("{MARK_VAR}={mark}");
    format!(
        "found=; for round in 1 2 3 4 5 6 7 8; do new=; for d in /proc/[0-9]*; do \
         p=${{d#/proc/}}; case \" $found \" in *\" $p \"*) continue;; esac; \
         if tr '\\0' '\\n' < $d/environ 2>/dev/null | grep -qx '{want}'; then \
         kill -STOP $p 2>/dev/null; new=\"$new $p\"; fi; done; \
         [ -z \"$new\" ] && break; found=\"$found $new\"; done; \
         [ -n \"$found\" ] && kill -KILL $found 2>/dev/null; exit 0"
    )
}

fn params(tty: bool, stdin: bool) -> AttachParams {
    AttachParams::default()
        .stdin(stdin)
        .stdout(true)
        .stderr(!tty)
        .tty(tty)
        .max_stdin_buf_size(STREAM_BUFFER)
        .max_stdout_buf_size(STREAM_BUFFER)
        .max_stderr_buf_size(STREAM_BUFFER)
}

/// Kills the processes of a stopped command, in the background, bounded.
fn kill_marked(pods: &Api<Pod>, pod: &str, mark: String) {
    let (pods, pod) = (pods.clone(), pod.to_string());
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    rt.spawn(async move {
        let argv = ["sh".to_string(), "-c".into(), kill_script(&mark)];
        let run = async {
            let mut p = pods.exec(&pod, argv, &params(false, false)).await.ok()?;
            let status = p.take_status()?;
            status.await
        };
        let _ = tokio::time::timeout(KILL_DEADLINE, run).await;
        tracing::debug!(pod, mark, "stopped a command");
    });
}

/// Kills the command's processes when its caller drops it before it ended.
struct KillOnDrop<'a> {
    pods: &'a Api<Pod>,
    pod: &'a str,
    mark: Option<String>,
}

impl KillOnDrop<'_> {
    fn disarm(&mut self) {
        self.mark = None;
    }
}

impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(mark) = self.mark.take() {
            kill_marked(self.pods, self.pod, mark);
        }
    }
}

/// A client error for people: the API server's message, reason and code, not its debug dump.
pub fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({}, {})", s.message, s.reason, s.code),
        e => e.to_string(),
    }
}

/// Why a command could not run, or its connection broke.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("starting the command: {}", describe(.0))]
    Start(kube::Error),
    #[error("{0}")]
    Refused(String),
    #[error("{context}: {source}")]
    Io {
        context: &'static str,
        #[source]
        source: std::io::Error,
    },
}

fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> ExecError {
    move |source| ExecError::Io { context, source }
}

async fn start(
    pods: &Api<Pod>,
    pod: &str,
    argv: Vec<String>,
    ap: &AttachParams,
) -> Result<AttachedProcess, ExecError> {
    pods.exec(pod, argv, ap).await.map_err(ExecError::Start)
}

async fn status_of(p: &mut AttachedProcess) -> Result<i64, ExecError> {
    let status = match p.take_status() {
        Some(s) => s.await,
        None => None,
    };
    match status {
        Some(s) => exit_code(&s).map_err(ExecError::Refused),
        None => Err(ExecError::Refused(
            "the connection closed before the command's exit status came".into(),
        )),
    }
}

/// Copies `stdin` into a command's input until EOF, then closes the input if the API server can
/// pass that on (`stdin_eof`); otherwise the input stays open (closing it would close the whole
/// connection, output and exit status included). Never ends.
async fn feed(
    mut stdin: crate::runtime::Input,
    mut input: tokio::io::WriteHalf<tokio::io::SimplexStream>,
    stdin_eof: bool,
) {
    let _ = tokio::io::copy(&mut stdin, &mut input).await;
    if stdin_eof {
        let _ = input.shutdown().await;
    }
    std::future::pending::<()>().await;
}

/// Runs `argv` in `pod` and keeps its output within `limits`.
pub async fn captured(
    pods: &Api<Pod>,
    pod: &str,
    argv: &[String],
    limits: ExecLimits,
) -> Result<ExecOutput, ExecError> {
    let deadline = tokio::time::Instant::now() + limits.deadline;
    let mark = new_mark();
    let mut guard = KillOnDrop {
        pods,
        pod,
        mark: Some(mark.clone()),
    };
    let late = || ExecOutput {
        exit_code: -1,
        timed_out: true,
        stopped: Some(format!(
            "the command did not finish within {}; it was stopped",
            crate::docker::exec::show_secs(limits.deadline)
        )),
        ..Default::default()
    };
    let started = tokio::time::timeout_at(
        deadline,
        start(pods, pod, marked(argv, &mark), &params(false, false)),
    )
    .await;
    let mut p = match started {
        Err(_) => return Ok(late()),
        Ok(p) => p?,
    };
    let (mut out, mut err) = (p.stdout(), p.stderr());
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let mut truncated = false;
    let mut timed_out = false;
    let (mut b1, mut b2) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
    while out.is_some() || err.is_some() {
        let read = async {
            tokio::select! {
                r = async { out.as_mut().unwrap().read(&mut b1).await }, if out.is_some() => (1, r),
                r = async { err.as_mut().unwrap().read(&mut b2).await }, if err.is_some() => (2, r),
            }
        };
        let (which, r) = match tokio::time::timeout_at(deadline, read).await {
            Err(_) => {
                timed_out = true;
                break;
            }
            Ok(x) => x,
        };
        let n = r.map_err(io("reading the command's output"))?;
        let room = limits
            .output_cap
            .saturating_sub(stdout.len() + stderr.len());
        let (slot, buf, sink) = if which == 1 {
            (&mut out, &b1, &mut stdout)
        } else {
            (&mut err, &b2, &mut stderr)
        };
        if n == 0 {
            *slot = None;
            continue;
        }
        let keep = n.min(room);
        sink.extend_from_slice(&buf[..keep]);
        if keep < n {
            truncated = true;
            break;
        }
    }
    let mut exit = -1;
    if !timed_out && !truncated {
        match tokio::time::timeout_at(deadline, status_of(&mut p)).await {
            Err(_) => timed_out = true,
            Ok(code) => exit = code?,
        }
    }
    p.abort();
    let stopped = if truncated {
        Some(format!(
            "output truncated at {}; the command was stopped",
            crate::docker::exec::show_bytes(limits.output_cap)
        ))
    } else if timed_out {
        late().stopped
    } else {
        guard.disarm();
        None
    };
    drop(guard);
    Ok(ExecOutput {
        exit_code: exit,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        truncated,
        timed_out: timed_out && !truncated,
        stopped,
    })
}

/// Runs `argv` in `pod` without a TTY, piped through `pipes`, read no faster than written.
/// The API server's exec protocol before Kubernetes 1.30 (v4) cannot close a command's stdin
/// (`stdin_eof` false): there, EOF on `pipes.stdin` is not passed on, and a command reading its
/// stdin to the end waits for its deadline.
pub async fn streamed(
    pods: &Api<Pod>,
    pod: &str,
    argv: &[String],
    pipes: Pipes<'_>,
    deadline: Option<Duration>,
    stdin_eof: bool,
) -> Result<Streamed, ExecError> {
    let Pipes {
        stdin,
        stdout,
        stderr,
    } = pipes;
    let mark = new_mark();
    let mut guard = KillOnDrop {
        pods,
        pod,
        mark: Some(mark.clone()),
    };
    let work = async {
        let mut p = start(pods, pod, marked(argv, &mark), &params(false, true)).await?;
        let input = p.stdin().expect("stdin asked for");
        let (mut out, mut err) = (p.stdout(), p.stderr());
        let feed = feed(stdin, input, stdin_eof);
        let copy = async {
            let (mut b1, mut b2) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
            while out.is_some() || err.is_some() {
                let (which, r) = tokio::select! {
                    r = async { out.as_mut().unwrap().read(&mut b1).await }, if out.is_some() => (1, r),
                    r = async { err.as_mut().unwrap().read(&mut b2).await }, if err.is_some() => (2, r),
                };
                let n = r.map_err(io("reading the command's output"))?;
                let (slot, buf, sink) = if which == 1 {
                    (&mut out, &b1, &mut *stdout)
                } else {
                    (&mut err, &b2, &mut *stderr)
                };
                if n == 0 {
                    *slot = None;
                    continue;
                }
                sink.write_all(&buf[..n])
                    .await
                    .map_err(io("writing the command's output"))?;
                sink.flush()
                    .await
                    .map_err(io("writing the command's output"))?;
            }
            Ok::<_, ExecError>(())
        };
        tokio::select! {
            r = copy => r?,
            _ = feed => unreachable!("feeding stdin never ends"),
        }
        status_of(&mut p).await
    };
    let ended = match deadline {
        None => Some(work.await),
        Some(d) => tokio::time::timeout(d, work).await.ok(),
    };
    match ended {
        Some(Ok(code)) => {
            guard.disarm();
            Ok(Streamed::Exited(code))
        }
        Some(Err(e)) => Err(e),
        None => Ok(Streamed::DeadlinePassed),
    }
}

/// Runs `argv` in `pod` with a TTY wired to `term`; the command's exit code.
pub async fn interactive(
    pods: &Api<Pod>,
    pod: &str,
    argv: &[String],
    term: Terminal<'_>,
    stdin_eof: bool,
) -> Result<i64, ExecError> {
    let Terminal {
        stdin,
        stdout,
        mut resize,
    } = term;
    let mark = new_mark();
    let mut guard = KillOnDrop {
        pods,
        pod,
        mark: Some(mark.clone()),
    };
    let mut p = start(pods, pod, marked(argv, &mark), &params(true, true)).await?;
    let input = p.stdin().expect("stdin asked for");
    let mut out = p.stdout().expect("stdout asked for");
    let mut sizes = p.terminal_size();
    let feed = feed(stdin, input, stdin_eof);
    let resizing = async move {
        while let Some((cols, rows)) = resize.next().await {
            if let Some(s) = sizes.as_mut() {
                let _ = s
                    .send(TerminalSize {
                        width: cols,
                        height: rows,
                    })
                    .await;
            }
        }
        std::future::pending::<()>().await;
    };
    let copy = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = out
                .read(&mut buf)
                .await
                .map_err(io("reading the terminal"))?;
            if n == 0 {
                return Ok::<_, ExecError>(());
            }
            stdout
                .write_all(&buf[..n])
                .await
                .map_err(io("writing the terminal"))?;
            stdout.flush().await.map_err(io("writing the terminal"))?;
        }
    };
    tokio::select! {
        r = copy => r?,
        _ = feed => unreachable!(),
        _ = resizing => unreachable!(),
    }
    let code = status_of(&mut p).await;
    guard.disarm();
    code
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{StatusCause, StatusDetails};

    #[test]
    fn exit_codes_come_from_the_status() {
        let ok = Status {
            status: Some("Success".into()),
            ..Default::default()
        };
        assert_eq!(exit_code(&ok), Ok(0));
        let failed = Status {
            status: Some("Failure".into()),
            reason: Some("NonZeroExitCode".into()),
            message: Some("command terminated with non-zero exit code".into()),
            details: Some(StatusDetails {
                causes: Some(vec![StatusCause {
                    reason: Some("ExitCode".into()),
                    message: Some("3".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(exit_code(&failed), Ok(3));
        let refused = Status {
            status: Some("Failure".into()),
            message: Some("executable file not found".into()),
            ..Default::default()
        };
        assert_eq!(
            exit_code(&refused),
            Err("executable file not found".to_string())
        );
    }

    #[test]
    fn a_command_carries_its_mark_and_the_kill_looks_for_exactly_it() {
        let argv = marked(&["ip".to_string(), "a".to_string()], "ab-1");
        assert_eq!(argv, ["env", "V6LAB_EXEC=ab-1", "ip", "a"]);
        let script = kill_script("ab-1");
        assert!(script.contains("grep -qx 'V6LAB_EXEC=ab-1'"), "{script}");
        assert!(script.contains("kill -STOP") && script.contains("kill -KILL"));
    }
}
