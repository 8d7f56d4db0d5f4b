//! Tools for attacking a lab and a controller the way students and classroom networks do, and
//! for measuring what it costs: the controller's memory, request times, host-side counters.

use super::serve::Serve;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A small topology whose one exercise passes from the start: a router and a host on one
/// dual-stack segment with static addresses. `v6` is the first three groups of the IPv6 /64
/// (`2001:db8:a`), `v4` the first three octets of the IPv4 /24: r1 is `::1`/`.1`, h1 `::10`/`.10`.
/// The host's checks use `ip` and `ping`, the commands a hostile student replaces.
pub fn tiny_topology(dir: &Path, v6: &str, v4: &str) -> PathBuf {
    let text = format!(
        r#"name: adversary
description: A router and a host on one dual-stack segment; every check passes from the start.
lifetime: 1h
segments:
  lan: {{family: dual-stack, ipv6: "{v6}::/64", ipv4: {v4}.0/24}}
nodes:
  r1:
    role: router
    interfaces:
      eth1: {{segment: lan, ipv6: "{v6}::1", ipv4: {v4}.1/24}}
  h1:
    role: host
    interfaces:
      eth1: {{segment: lan, ipv6: "{v6}::10", ipv4: {v4}.10/24}}
exercises:
  - id: reach
    title: The host reaches its router
    instructions: Nothing to do; this lab is for measurements.
    passes-initially: true
    checks:
      - node: h1
        command: ip -6 addr show dev eth1
        stdout: {{contains: "{v6}::10/64"}}
      - node: h1
        ping: "{v6}::1"
        timeout: 10s
"#
    );
    let path = dir.join(format!("adversary-{v4}.yaml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// A class's labs: (name, student, token).
pub fn class_labs(v: &Value) -> Vec<(String, String, String)> {
    v["labs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["name"].as_str().unwrap().to_owned(),
                l["student"].as_str().unwrap().to_owned(),
                l["token"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The answer to one "check my work now".
#[derive(Debug, Clone)]
pub struct CheckNow {
    /// How long the answered request took (waits for a cooldown are not counted).
    pub took: Duration,
    pub status: u16,
    pub body: Value,
}

impl CheckNow {
    /// Every exercise passed.
    pub fn green(&self) -> bool {
        self.status == 200
            && self.body["exercises"]
                .as_array()
                .is_some_and(|e| !e.is_empty() && e.iter().all(|e| e["passed"] == true))
    }

    /// Every check's detail, one a line.
    pub fn details(&self) -> String {
        let mut out = String::new();
        for e in self.body["exercises"].as_array().into_iter().flatten() {
            for c in e["checks"].as_array().into_iter().flatten() {
                out.push_str(&format!(
                    "{}: {} ({})\n",
                    c["title"].as_str().unwrap_or(""),
                    c["detail"].as_str().unwrap_or(""),
                    if c["passed"] == true { "pass" } else { "fail" }
                ));
            }
        }
        out
    }
}

/// A client for attacks: no connection pool surprises, a deadline on every request.
pub fn http(timeout: Duration) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(timeout)
        .build()
        .unwrap()
}

/// "Check my work now" for `lab`, as `token`: waits out a cooldown (429 with Retry-After) until
/// `deadline`, then times the request that is answered. Err: no answer (the message says why).
pub fn check_now(
    s: &Serve,
    lab: &str,
    token: &str,
    deadline: Duration,
) -> Result<CheckNow, String> {
    let client = http(deadline);
    let start = Instant::now();
    loop {
        let t0 = Instant::now();
        let r = client
            .post(format!("{}/api/labs/{lab}/checks", s.url))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .map_err(|e| {
                format!(
                    "check now of {lab}: no answer after {:?}: {e}",
                    t0.elapsed()
                )
            })?;
        let status = r.status().as_u16();
        let retry = r
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let text = r.text().unwrap_or_default();
        let took = t0.elapsed();
        if status == 429 && start.elapsed() < deadline {
            // The protocol says when to come back; that is not a readiness guess.
            std::thread::sleep(Duration::from_secs(retry.unwrap_or(1).clamp(1, 30)));
            continue;
        }
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        return Ok(CheckNow { took, status, body });
    }
}

/// "Check now" of several labs at once (one thread each), in the given order.
pub fn check_round(
    s: &Serve,
    labs: &[(String, String)],
    deadline: Duration,
) -> Vec<Result<CheckNow, String>> {
    std::thread::scope(|sc| {
        let hs: Vec<_> = labs
            .iter()
            .map(|(lab, token)| sc.spawn(move || check_now(s, lab, token, deadline)))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// A process's resident memory (VmRSS), bytes.
pub fn rss(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Polls a process's RSS every 20 ms and keeps the peak. Past `kill_at` it kills the process
/// (SIGKILL): a controller without bounds would otherwise take the machine's memory.
pub struct RssWatch {
    peak: Arc<AtomicU64>,
    killed: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RssWatch {
    pub fn start(pid: u32, kill_at: u64) -> RssWatch {
        let peak = Arc::new(AtomicU64::new(0));
        let killed = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, k, st) = (peak.clone(), killed.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                let Some(r) = rss(pid) else { break };
                p.fetch_max(r, Ordering::Relaxed);
                if r > kill_at {
                    // SAFETY: kill(2) on the controller this test started.
                    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                    k.store(true, Ordering::Relaxed);
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        RssWatch {
            peak,
            killed,
            stop,
            thread: Some(thread),
        }
    }

    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    /// The watch killed the process for its memory.
    pub fn killed(&self) -> bool {
        self.killed.load(Ordering::Relaxed)
    }
}

impl Drop for RssWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Polls `/healthz` every 100 ms with a 1 s deadline per request, until dropped; records the
/// slowest answer and every failure.
pub struct HealthWatch {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<(usize, Duration, Vec<String>)>>,
}

impl HealthWatch {
    pub fn start(s: &Serve) -> HealthWatch {
        let url = format!("{}/healthz", s.url);
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let thread = std::thread::spawn(move || {
            let client = http(Duration::from_secs(1));
            let (mut n, mut worst, mut failures) = (0, Duration::ZERO, Vec::new());
            while !st.load(Ordering::Relaxed) {
                let t0 = Instant::now();
                let r = client.get(&url).send();
                let took = t0.elapsed();
                n += 1;
                worst = worst.max(took);
                match r {
                    Ok(r) if r.status().is_success() => {}
                    Ok(r) => failures.push(format!("{} after {took:?}", r.status())),
                    Err(e) => failures.push(format!("no answer after {took:?}: {e}")),
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            (n, worst, failures)
        });
        HealthWatch {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops polling: (polls, slowest answer, failures).
    pub fn finish(mut self) -> (usize, Duration, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for HealthWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Host firewall counters for a test: rules that only count (no target) or, for the safety
/// net, drop; each carries a comment naming the test and is removed when this is dropped.
pub struct Counters {
    rules: Vec<(&'static str, Vec<String>)>,
    comment: String,
}

impl Counters {
    pub fn new(tag: &str) -> Counters {
        Counters {
            rules: Vec::new(),
            comment: format!("v6lab-test-{}-{tag}", std::process::id()),
        }
    }

    /// Appends (`-A`) or inserts (`-I`) a rule: `tool` iptables or ip6tables; `spec` the table,
    /// chain and match (for example `["-t", "raw", "PREROUTING", "-i", "v6lab+"]`). Returns the
    /// rule's key for [`Counters::packets`].
    pub fn add(&mut self, tool: &'static str, op: &str, spec: &[&str]) -> usize {
        let mut rule: Vec<String> = spec.iter().map(|s| s.to_string()).collect();
        rule.extend(["-m", "comment", "--comment"].map(String::from));
        rule.push(format!("{}-{}", self.comment, self.rules.len()));
        let (table, rest) = split_table(&rule);
        let mut args = vec!["-w".to_string(), "-t".into(), table, op.into()];
        args.extend(rest);
        let o = Command::new(tool).args(&args).output().unwrap();
        assert!(
            o.status.success(),
            "{tool} {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        self.rules.push((tool, rule));
        self.rules.len() - 1
    }

    /// Packets the rule has seen.
    pub fn packets(&self, key: usize) -> u64 {
        let (tool, rule) = &self.rules[key];
        let (table, rest) = split_table(rule);
        let chain = &rest[0];
        let o = Command::new(tool)
            .args(["-w", "-t", &table, "-L", chain, "-n", "-v", "-x"])
            .output()
            .unwrap();
        let mark = format!("{}-{key} ", self.comment);
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .find(|l| format!("{l} ").contains(&mark))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("rule {key} not found in {tool} {table} {chain}"))
    }
}

fn split_table(rule: &[String]) -> (String, Vec<String>) {
    if rule.first().map(String::as_str) == Some("-t") {
        (rule[1].clone(), rule[2..].to_vec())
    } else {
        ("filter".into(), rule.to_vec())
    }
}

impl Drop for Counters {
    fn drop(&mut self) {
        for (tool, rule) in &self.rules {
            let (table, rest) = split_table(rule);
            let mut args = vec!["-w".to_string(), "-t".into(), table, "-D".into()];
            args.extend(rest);
            let _ = Command::new(tool).args(&args).output();
        }
    }
}

/// A TCP connection to `dst` from the local address `src` (another loopback address stands for
/// another machine of the classroom); `timeout` bounds the connect.
pub fn connect_from(
    src: std::net::Ipv4Addr,
    dst: std::net::SocketAddrV4,
    timeout: Duration,
) -> std::io::Result<std::net::TcpStream> {
    use std::os::fd::FromRawFd;
    let sockaddr = |a: std::net::SocketAddrV4| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls on a descriptor this function owns until it is wrapped.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let stream = std::net::TcpStream::from_raw_fd(fd);
        // Linux bounds a blocking connect by the send timeout.
        stream.set_write_timeout(Some(timeout))?;
        let from = sockaddr(std::net::SocketAddrV4::new(src, 0));
        if libc::bind(fd, &from as *const _ as *const libc::sockaddr, len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let to = sockaddr(dst);
        if libc::connect(fd, &to as *const _ as *const libc::sockaddr, len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        stream.set_write_timeout(None)?;
        Ok(stream)
    }
}
