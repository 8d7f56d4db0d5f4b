//! Stopping a command in a node from the host. A student is root in their node and can replace
//! `timeout`, `kill` or `sh`, so no binary in the node enforces a bound: the runtime runs on
//! this host and signals the command's processes by their host PIDs.
//!
//! The processes to stop are the exec's own process (its host PID, from the engine) and every
//! process of the node that carries the exec's mark in its environment (what the command left
//! running after its own process ended), with all their descendants
//! (`/proc/<pid>/task/*/children`). They are stopped first (SIGSTOP: a stopped process cannot
//! fork), walked again until no new descendant appears, then killed (SIGKILL). A PID is only
//! signalled while its cgroup names the node's container.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

/// The environment variable that marks every process an exec starts (inherited by children).
pub const MARK_VAR: &str = "V6LAB_EXEC";

/// Rounds of stop-and-walk before killing (each round stops every process found so far; a
/// process tree bounded by the node's PID limit is frozen within a few rounds).
const ROUNDS: usize = 64;
/// How long to wait for killed processes to leave the process table.
const REAP_DEADLINE: Duration = Duration::from_secs(2);

/// A mark unique on this host for one exec (this process's PID, a counter and the time).
/// Nothing secret: a process that forges another exec's mark only gets itself stopped with it.
pub fn new_mark() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{:x}-{n:x}-{:x}", std::process::id(), t % (1 << 48))
}

/// PIDs in a `/proc/<pid>/task/<tid>/children` file ("12 34 ").
pub fn parse_children(text: &str) -> Vec<u32> {
    text.split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect()
}

/// Whether a `/proc/<pid>/cgroup` file places the process in the container `container_id`
/// (full ID; the cgroupfs driver writes `/docker/<id>`, the systemd driver `docker-<id>.scope`).
pub fn in_container(cgroup: &str, container_id: &str) -> bool {
    container_id.len() >= 12
        && cgroup.lines().any(|l| {
            l.split(':').nth(2).is_some_and(|path| {
                path.split('/')
                    .any(|c| c == container_id || c == format!("docker-{container_id}.scope"))
            })
        })
}

/// Whether a `/proc/<pid>/environ` (NUL-separated) carries `V6LAB_EXEC=<mark>`.
pub fn has_mark(environ: &[u8], mark: &str) -> bool {
    let want = format!("{MARK_VAR}={mark}");
    environ.split(|b| *b == 0).any(|v| v == want.as_bytes())
}

fn read(path: impl AsRef<Path>) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn belongs(pid: u32, container_id: &str) -> bool {
    read(format!("/proc/{pid}/cgroup")).is_some_and(|c| in_container(&c, container_id))
}

/// Direct children of every thread of `pid`.
fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| read(t.path().join("children")))
        .flat_map(|c| parse_children(&c))
        .collect()
}

/// Processes of the container carrying the mark.
fn marked(container_id: &str, mark: &str) -> Vec<u32> {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| belongs(*pid, container_id))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| has_mark(&env, mark))
        })
        .collect()
}

/// Whether the process has left the process table (or is a zombie waiting for its parent).
fn gone(pid: u32) -> bool {
    match read(format!("/proc/{pid}/stat")) {
        None => true,
        // The state follows the command name in parentheses, which may itself hold ") ".
        Some(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
    }
}

/// Stops and kills `roots` (host PIDs of the exec's process) and the marked processes of the
/// container, with all their descendants; waits briefly until they are gone. Returns the PIDs
/// killed. Blocking (reads /proc): call it from a blocking task.
pub fn kill_tree(container_id: &str, roots: &[u32], mark: &str) -> Vec<u32> {
    let mut start: Vec<u32> = roots
        .iter()
        .copied()
        .filter(|p| belongs(*p, container_id))
        .collect();
    start.extend(marked(container_id, mark));
    let mut stopped: BTreeSet<u32> = BTreeSet::new();
    for _ in 0..ROUNDS {
        let mut fresh = Vec::new();
        let mut seen = BTreeSet::new();
        let mut todo: Vec<u32> = start.iter().chain(&stopped).copied().collect();
        while let Some(pid) = todo.pop() {
            if !seen.insert(pid) {
                continue;
            }
            if !stopped.contains(&pid) {
                fresh.push(pid);
            }
            todo.extend(children(pid));
        }
        if fresh.is_empty() {
            break;
        }
        for pid in fresh {
            if belongs(pid, container_id) {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGSTOP);
                stopped.insert(pid);
            }
        }
    }
    for pid in &stopped {
        let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGKILL);
    }
    let deadline = Instant::now() + REAP_DEADLINE;
    while Instant::now() < deadline && !stopped.iter().all(|p| gone(*p)) {
        std::thread::sleep(Duration::from_millis(10));
    }
    stopped.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn children_files_parse() {
        assert_eq!(parse_children("12 34 \n"), vec![12, 34]);
        assert!(parse_children("").is_empty());
    }

    #[test]
    fn cgroups_name_the_container() {
        let cgroupfs = format!("12:pids:/docker/{ID}\n11:memory:/docker/{ID}\n0::/\n");
        assert!(in_container(&cgroupfs, ID));
        let systemd = format!("0::/system.slice/docker-{ID}.scope\n");
        assert!(in_container(&systemd, ID));
        assert!(!in_container("12:pids:/user.slice\n0::/\n", ID));
        // A prefix of the ID, or another container's ID that contains it, is not the container.
        assert!(!in_container(&format!("12:pids:/docker/{ID}ff\n"), ID));
        assert!(!in_container(
            &format!("12:pids:/docker/{}\n", &ID[..12]),
            ID
        ));
        assert!(!in_container(&cgroupfs, ""));
    }

    #[test]
    fn marks_are_whole_variables() {
        let env = b"PATH=/bin\0V6LAB_EXEC=abc\0HOME=/root\0";
        assert!(has_mark(env, "abc"));
        assert!(!has_mark(env, "ab"));
        assert!(!has_mark(b"X_V6LAB_EXEC=abc\0", "abc"));
        assert!(!has_mark(b"", "abc"));
    }

    #[test]
    fn this_process_is_not_in_a_container() {
        assert!(!belongs(std::process::id(), ID));
        // Nothing is signalled outside the container.
        assert!(kill_tree(ID, &[std::process::id()], "no-such-mark").is_empty());
        assert!(!gone(std::process::id()));
    }
}
