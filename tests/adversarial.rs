//! The adversarial suite: a student is root in their lab and hostile, the classroom network is
//! hostile. Each case attacks the controller, another lab or the host the way a room of students
//! would, prints its figure (`adversarial X: ...`) and asserts that the class survives.
//! docs/security.md maps each case to the boundary it proves.

mod common;

use common::hostile::*;
use common::serve::Serve;
use common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The controller's resident memory must stay under this during an attack.
const RSS_LIMIT: u64 = 100 << 20;
/// Past this the test kills the controller: an unbounded one would take the machine's memory.
const RSS_KILL: u64 = 400 << 20;

fn class_name(tag: &str) -> String {
    format!("adv{}{tag}", std::process::id() % 100_000)
}

/// Seconds since the epoch, with a fraction.
fn epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Runs `cmd` in a node as its root would (`v6lab exec`): (exit code, stdout, stderr).
fn node_sh(lab: &str, node: &str, cmd: &str) -> (i32, String, String) {
    let o = v6lab(&["exec", lab, node, "--", "sh", "-c", cmd]);
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A class of `n` small labs (see `tiny_topology`), ready: (name, student, token) each.
fn ready_class(
    s: &mut Serve,
    tag: &str,
    v6: &str,
    v4: &str,
    n: usize,
) -> Vec<(String, String, String)> {
    let class = class_name(tag);
    let t = tiny_topology(&s.dir.clone(), v6, v4);
    let v = s.class_create_file(&t, &class, n, "30m");
    s.wait_ready(&class, n);
    class_labs(&v)
}

/// Checks labs at once ("check now"); each must be green. The slowest answer.
fn green_round(s: &Serve, labs: &[(String, String)]) -> Duration {
    let mut slowest = Duration::ZERO;
    for ((lab, _), r) in labs
        .iter()
        .zip(check_round(s, labs, Duration::from_secs(60)))
    {
        let r = r.unwrap_or_else(|e| panic!("{lab}: {e}"));
        assert!(r.green(), "{lab} is not green:\n{}", r.details());
        slowest = slowest.max(r.took);
    }
    slowest
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// Replaces the commands checks run in a node: `ip`, `dig` and `curl` print zeros forever,
/// `ping` never ends.
const PLANT_FLOOD_AND_HANG: &str = r#"set -e
for b in ip dig curl; do
  p=$(command -v $b) || continue
  printf '#!/bin/sh\nexec cat /dev/zero\n' > "$p.hostile" && chmod 755 "$p.hostile" && mv "$p.hostile" "$p"
done
p=$(command -v ping)
printf '#!/bin/sh\nexec sleep infinity\n' > "$p.hostile" && chmod 755 "$p.hostile" && mv "$p.hostile" "$p"
"#;

/// a. An output flood and a hung command in one lab while the class's other labs are checked
/// in the same round: the controller's memory stays bounded, the other labs' checks are not
/// delayed, the hostile lab's check fails with a clear reason.
/// The cases run one at a time: each loads the whole machine (a fork bomb, floods, a hundred
/// killed `up`s), and a figure such as case a's "twice the normal time" means nothing if another
/// case's attack shares the two cores.
static MACHINE_WIDE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn machine_wide() -> std::sync::MutexGuard<'static, ()> {
    MACHINE_WIDE.lock().unwrap_or_else(|p| p.into_inner())
}

#[test]
fn a_output_flood_and_hung_command_do_not_hold_the_class() {
    let _alone = machine_wide();
    let mut s = Serve::with("adv-a", "3s", false);
    let labs = ready_class(&mut s, "a", "2001:db8:a", "203.0.113", 6);
    let hostile = (labs[0].0.clone(), labs[0].2.clone());
    let others: Vec<(String, String)> = labs[1..]
        .iter()
        .map(|(l, _, t)| (l.clone(), t.clone()))
        .collect();
    let watch = RssWatch::start(s.pid().unwrap(), RSS_KILL);

    // Normal: the five labs checked at once, twice; the slowest answer of either round.
    let normal = green_round(&s, &others).max(green_round(&s, &others));

    let (code, out, err) = node_sh(&hostile.0, "h1", PLANT_FLOOD_AND_HANG);
    assert_eq!(code, 0, "planting failed:\n{out}\n{err}");
    let planted = now();

    // The same round: the hostile lab and the five others, at once.
    let mut round = vec![hostile.clone()];
    round.extend(others.iter().cloned());
    let started = Instant::now();
    let results = check_round(&s, &round, Duration::from_secs(120));
    let round_took = started.elapsed();
    let peak = watch.peak();
    let killed = watch.killed();
    let slowest = results[1..]
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|r| r.took)
        .max()
        .unwrap_or_default();
    eprintln!(
        "adversarial a: controller RSS peak {:.0} MiB{}; other labs' checks {} vs {} normal; \
         the hostile lab answered in {}",
        mib(peak),
        if killed { " (killed by the test)" } else { "" },
        secs(slowest),
        secs(normal),
        results[0]
            .as_ref()
            .map(|r| secs(r.took))
            .unwrap_or_else(|e| e.clone()),
    );
    assert!(
        !killed && peak < RSS_LIMIT,
        "the controller's RSS reached {:.0} MiB (limit {:.0} MiB) while one lab's commands \
         flooded their output",
        mib(peak),
        mib(RSS_LIMIT)
    );
    for ((lab, _), r) in round[1..].iter().zip(&results[1..]) {
        let r = r.as_ref().unwrap_or_else(|e| panic!("{lab}: {e}"));
        assert!(
            r.green(),
            "{lab} went red beside the hostile lab:\n{}",
            r.details()
        );
        assert!(
            r.took <= normal * 2,
            "{lab}'s check took {} beside the hostile lab, over twice the normal {} \
             (the whole round: {})",
            secs(r.took),
            secs(normal),
            secs(round_took)
        );
    }
    let h = results[0]
        .as_ref()
        .unwrap_or_else(|e| panic!("the hostile lab's check never answered: {e}"));
    let details = h.details();
    assert_eq!(h.status, 200, "the hostile lab's check: {:?}", h.body);
    assert!(!h.green(), "the hostile lab passed:\n{details}");
    let lower = details.to_lowercase();
    assert!(
        lower.contains("truncated"),
        "the flooding check does not say its output was truncated:\n{details}"
    );
    assert!(
        lower.contains("did not finish within")
            || lower.contains("timed out")
            || lower.contains("deadline"),
        "the hung check does not say it timed out:\n{details}"
    );
    // The periodic rounds go on for the other labs: each is checked again after the plant.
    let admin = s.admin_token();
    wait_for(
        "a periodic round to check the other labs after the plant",
        Duration::from_secs(30),
        || {
            others
                .iter()
                .all(|(lab, _)| {
                    let (code, body) =
                        s.request("GET", &format!("/api/labs/{lab}/checks"), Some(&admin));
                    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                    code == 200
                        && v["exercises"].as_array().is_some_and(|e| {
                            e.iter()
                                .all(|e| e["checked"].as_i64().unwrap_or(0) > planted + 1)
                        })
                })
                .then_some(())
        },
    );
    drop(watch);
}

/// b. A fork bomb, a memory hog and a disk fill in one lab: the other labs stay green and the
/// controller answers `/healthz` within 1 s throughout.
#[test]
fn b_fork_bomb_memory_hog_and_disk_fill_stay_in_their_lab() {
    let _alone = machine_wide();
    let mut s = Serve::start("adv-b");
    let labs = ready_class(&mut s, "b", "2001:db8:b", "198.51.100", 3);
    let hostile = labs[0].0.clone();
    let others: Vec<(String, String)> = labs[1..]
        .iter()
        .map(|(l, _, t)| (l.clone(), t.clone()))
        .collect();
    let health = HealthWatch::start(&s);
    let watch = RssWatch::start(s.pid().unwrap(), RSS_KILL);
    let normal = green_round(&s, &others);

    // Disk: one file of up to 1 GiB in each writable place a student uses, and in `/` (at most
    // 4 GiB in all: the host's disk is shared, and a node must be stopped well before).
    let (_, out, err) = node_sh(
        &hostile,
        "h1",
        "for d in /root /tmp /var/tmp /srv; do head -c 1G /dev/zero > $d/fill 2>/dev/null; \
         echo $d $(stat -c %s $d/fill 2>/dev/null || echo 0); done",
    );
    let filled: Vec<(String, u64)> = out
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.to_owned(), w.next()?.parse().ok()?))
        })
        .collect();
    assert_eq!(filled.len(), 4, "the disk fill did not run:\n{out}\n{err}");
    let wrote: u64 = filled.iter().map(|f| f.1).sum();
    // Memory: two readers of an endless line; processes: a fork bomb. Both left running.
    let (code, out, err) = node_sh(
        &hostile,
        "r1",
        "setsid sh -c 'tail /dev/zero & tail /dev/zero & wait' </dev/null >/dev/null 2>&1 &",
    );
    assert_eq!(code, 0, "the memory hog did not start:\n{out}\n{err}");
    let (code, out, err) = node_sh(
        &hostile,
        "h1",
        "setsid bash -c 'f() { f | f & }; f' </dev/null >/dev/null 2>&1 &",
    );
    assert_eq!(code, 0, "the fork bomb did not start:\n{out}\n{err}");

    // 20 s under attack: the other labs are checked again and again.
    let until = Instant::now() + Duration::from_secs(20);
    let (mut rounds, mut slowest) = (0, Duration::ZERO);
    while Instant::now() < until {
        slowest = slowest.max(green_round(&s, &others));
        rounds += 1;
    }
    let unbounded: Vec<&(String, u64)> = filled.iter().filter(|f| f.1 >= 1 << 30).collect();
    let (polls, worst, failures) = health.finish();
    let peak = watch.peak();
    eprintln!(
        "adversarial b: /healthz slowest {} over {polls} polls ({} failed); other labs green in \
         {rounds} rounds, slowest check {} vs {} normal; the node wrote {:.0} MiB of 4096 MiB ({filled:?}); \
         controller RSS peak {:.0} MiB",
        secs(worst),
        failures.len(),
        secs(slowest),
        secs(normal),
        mib(wrote),
        mib(peak)
    );
    assert!(
        failures.is_empty() && worst < Duration::from_secs(1),
        "/healthz was slow or failed during the attack (slowest {}): {failures:?}",
        secs(worst)
    );
    assert!(
        unbounded.is_empty(),
        "a node wrote a whole GiB into {unbounded:?}: the disk it can fill is not bounded"
    );
    assert!(
        !watch.killed(),
        "the controller's RSS reached {:.0} MiB",
        mib(peak)
    );
}

/// c. 200 "check now" requests from one student in 10 s: one runs, the rest are answered 429;
/// another student's "check now" is unaffected.
#[test]
fn c_check_now_flood_is_answered_429() {
    let _alone = machine_wide();
    let mut s = Serve::start("adv-c");
    let labs = ready_class(&mut s, "c", "2001:db8:c", "192.0.2", 2);
    let (lab_a, token_a) = (labs[0].0.clone(), labs[0].2.clone());
    let (lab_b, token_b) = (labs[1].0.clone(), labs[1].2.clone());
    let normal = check_now(&s, &lab_b, &token_b, Duration::from_secs(60)).unwrap();
    assert!(normal.green(), "{}", normal.details());

    let url = format!("{}/api/labs/{lab_a}/checks", s.url);
    let start = Instant::now();
    let (answers, other) = std::thread::scope(|sc| {
        let flood: Vec<_> = (0..200u32)
            .map(|i| {
                let (url, token) = (&url, &token_a);
                sc.spawn(move || {
                    // 200 requests spread evenly over 10 s (pacing, not waiting for anything).
                    let at = Duration::from_millis(50) * i;
                    std::thread::sleep(at.saturating_sub(start.elapsed()));
                    let r = http(Duration::from_secs(60))
                        .post(url)
                        .bearer_auth(token)
                        .header("content-type", "application/json")
                        .body("{}")
                        .send();
                    match r {
                        Ok(r) => (r.status().as_u16(), r.headers().contains_key("retry-after")),
                        Err(_) => (0, false),
                    }
                })
            })
            .collect();
        let other = sc.spawn(|| {
            std::thread::sleep(Duration::from_secs(5).saturating_sub(start.elapsed()));
            check_now(&s, &lab_b, &token_b, Duration::from_secs(60))
        });
        (
            flood
                .into_iter()
                .map(|h| h.join().unwrap())
                .collect::<Vec<_>>(),
            other.join().unwrap(),
        )
    });
    let ok = answers.iter().filter(|a| a.0 == 200).count();
    let limited = answers.iter().filter(|a| a.0 == 429).count();
    let other = other.unwrap();
    eprintln!(
        "adversarial c: 200 requests in {}: {ok} answered 200, {limited} answered 429, {} other; \
         the other student's check {} vs {} normal",
        secs(start.elapsed()),
        200 - ok - limited,
        secs(other.took),
        secs(normal.took)
    );
    assert_eq!(answers[0].0, 200, "the first request was not run");
    let runs: Vec<String> = answers
        .iter()
        .enumerate()
        .filter(|(_, a)| a.0 == 200)
        .map(|(i, _)| format!("{:.2} s", i as f64 * 0.05))
        .collect();
    assert_eq!(
        (ok, limited),
        (1, 199),
        "beyond the first, every request of the 10 s flood must be answered 429; requests sent \
         at {runs:?} were run (a cooldown shorter than the flood lets more through)"
    );
    assert!(
        answers.iter().filter(|a| a.0 == 429).all(|a| a.1),
        "a 429 without Retry-After"
    );
    assert!(other.green(), "the other lab: {}", other.details());
    assert!(
        other.took <= normal.took * 2 + Duration::from_millis(500),
        "the other student's check took {} (normal {})",
        secs(other.took),
        secs(normal.took)
    );
}

/// The OpenSSH client against a test controller's gateway, the password (`token`) given by an
/// askpass helper; at most `tries` passwords per connection.
fn ssh(s: &Serve, user: &str, token: &str, tries: u32, remote: &[&str]) -> Command {
    ssh_from(s, user, token, tries, remote, None)
}

/// [`ssh`] from a given local address (`-b`).
fn ssh_from(
    s: &Serve,
    user: &str,
    token: &str,
    tries: u32,
    remote: &[&str],
    from: Option<&str>,
) -> Command {
    let askpass = s.dir.join("askpass.sh");
    if !askpass.exists() {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(
            &askpass,
            "#!/bin/sh\nprintf '%s\\n' \"$V6LAB_TEST_TOKEN\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let mut c = Command::new("ssh");
    c.args(["-F", "/dev/null", "-p", &s.ssh_port.unwrap().to_string()]);
    if let Some(b) = from {
        c.args(["-b", b]);
    }
    for o in [
        "StrictHostKeyChecking=no",
        "UserKnownHostsFile=/dev/null",
        "LogLevel=ERROR",
        "PreferredAuthentications=password",
        "PubkeyAuthentication=no",
        "ConnectTimeout=20",
        &format!("NumberOfPasswordPrompts={tries}"),
    ] {
        c.args(["-o", o]);
    }
    c.arg(format!("{user}@127.0.0.1"))
        .arg("--")
        .args(remote)
        .env("SSH_ASKPASS", askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("DISPLAY", ":0")
        .env("V6LAB_TEST_TOKEN", token)
        .stdin(Stdio::null());
    c
}

/// A student logs in over SSH and runs a command in their node: (took, exit code, stderr).
fn ssh_login(s: &Serve, student: &str, token: &str, from: Option<&str>) -> (Duration, i32, String) {
    let t0 = Instant::now();
    let o = ssh_from(s, &format!("{student}+h1"), token, 1, &["echo", "in"], from)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let code = match o.status.code() {
        Some(0) if out.trim() != "in" => -2,
        c => c.unwrap_or(-1),
    };
    (
        t0.elapsed(),
        code,
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// d. 1,000 wrong tokens from one address, over HTTP and over SSH: a correct token from the
/// same address still works at once.
#[test]
fn d_wrong_tokens_never_lock_out_a_correct_one() {
    let _alone = machine_wide();
    let mut s = Serve::with("adv-d", "0s", true);
    let labs = ready_class(&mut s, "d", "2001:db8:d", "192.0.2", 1);
    let (lab, student, token) = labs[0].clone();
    let admin = s.admin_token();

    // HTTP: 8 clients, 125 wrong tokens each, of the right shape.
    let url = format!("{}/api/labs/{lab}", s.url);
    let t0 = Instant::now();
    let statuses: Vec<u16> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..8)
            .map(|k| {
                let url = &url;
                sc.spawn(move || {
                    let c = http(Duration::from_secs(30));
                    (0..125)
                        .map(|i| {
                            let wrong = format!("v6s_{:064x}", k * 1000 + i + 1);
                            c.get(url)
                                .bearer_auth(wrong)
                                .send()
                                .map(|r| r.status().as_u16())
                                .unwrap_or(0)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let flood = t0.elapsed();
    let t1 = Instant::now();
    let student_ok = s.request("GET", &format!("/api/labs/{lab}"), Some(&token));
    let admin_ok = s.request("GET", "/api/classes", Some(&admin));
    let correct = t1.elapsed();
    let count = |c: u16| statuses.iter().filter(|s| **s == c).count();
    eprintln!(
        "adversarial d (HTTP): 1000 wrong tokens in {}: {} answered 401, {} answered 429, {} \
         other; then the student's token {} and the administrator's {} in {}",
        secs(flood),
        count(401),
        count(429),
        1000 - count(401) - count(429),
        student_ok.0,
        admin_ok.0,
        secs(correct)
    );

    // SSH: 3 wrong passwords a connection (the gateway's maximum), 32 connections at a time,
    // until 1,000 wrong passwords were typed (or 3 minutes).
    let t0 = Instant::now();
    let (mut tried, mut denied, mut other) = (0, 0, 0);
    while tried < 1000 && t0.elapsed() < Duration::from_secs(180) {
        let batch: Vec<_> = (0..32)
            .map(|i| {
                let wrong = format!("v6s_{:064x}", tried + i + 1);
                ssh(&s, &format!("{student}+h1"), &wrong, 3, &["true"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in batch {
            let o = c.wait_with_output().unwrap();
            if String::from_utf8_lossy(&o.stderr).contains("Permission denied") {
                denied += 1;
                tried += 3;
            } else {
                other += 1;
            }
        }
    }
    let flood = t0.elapsed();
    let (took, code, err) = ssh_login(&s, &student, &token, None);
    eprintln!(
        "adversarial d (SSH): {tried} wrong passwords over {denied} connections in {} ({other} \
         connections cut before a password); then the correct token logged in in {} (exit {code})",
        secs(flood),
        secs(took)
    );
    assert!(
        statuses.iter().all(|c| *c == 401 || *c == 429),
        "a wrong token was answered otherwise than 401/429"
    );
    assert_eq!(
        student_ok.0, 200,
        "HTTP: the correct student token after 1000 wrong ones: {}",
        student_ok.1
    );
    assert_eq!(
        admin_ok.0, 200,
        "HTTP: the administrator token after 1000 wrong ones: {}",
        admin_ok.1
    );
    assert_eq!(code, 0, "SSH: the correct token could not log in: {err}");
    assert!(
        took < Duration::from_secs(5),
        "SSH: the correct token waited {}",
        secs(took)
    );
}

/// e. 600 SSH connections held open without logging in, from one address of the classroom: a
/// student still logs in, from another address and from that same one (a NAT).
#[test]
fn e_idle_ssh_connections_do_not_lock_out_a_student() {
    let _alone = machine_wide();
    let mut s = Serve::with("adv-e", "0s", true);
    let labs = ready_class(&mut s, "e", "2001:db8:e", "192.0.2", 1);
    let (_, student, token) = labs[0].clone();
    let gateway = std::net::SocketAddrV4::new([127, 0, 0, 1].into(), s.ssh_port.unwrap());
    let attacker = std::net::Ipv4Addr::new(127, 0, 0, 2);
    let t0 = Instant::now();
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..600 {
        match connect_from(attacker, gateway, Duration::from_secs(5)) {
            Ok(c) => held.push(c),
            Err(_) => refused += 1,
        }
    }
    let opened = t0.elapsed();
    let (took, code, err) = ssh_login(&s, &student, &token, None);
    // The same student from the attacker's address (a classroom behind one NAT address).
    let (took_nat, code_nat, _) = ssh_login(&s, &student, &token, Some("127.0.0.2"));
    // How many of them the gateway still holds (closed ones read as end of file).
    let open = held
        .iter()
        .filter(|c| {
            c.set_nonblocking(true).unwrap();
            let mut b = [0u8; 256];
            loop {
                match std::io::Read::read(&mut &**c, &mut b) {
                    Ok(0) => return false,
                    Ok(_) => continue,
                    Err(e) => return e.kind() == std::io::ErrorKind::WouldBlock,
                }
            }
        })
        .count();
    eprintln!(
        "adversarial e: 600 connections from {attacker} opened in {} ({refused} refused at \
         once, {open} still open at the end); a student from 127.0.0.1 logged in in {} (exit \
         {code}); from {attacker} itself in {} (exit {code_nat})",
        secs(opened),
        secs(took),
        secs(took_nat)
    );
    assert_eq!(code, 0, "the student could not log in: {err}");
    assert_eq!(
        code_nat, 0,
        "a student behind the flooding address (one NAT) could not log in"
    );
    drop(held);
}

/// Cleanup the host keeps of `labs` after they are gone: containers, bridges, veths.
fn lab_leftovers(labs: &[String]) -> Vec<String> {
    labs.iter()
        .flat_map(|l| leftovers(l).into_iter().map(move |x| format!("{l}: {x}")))
        .collect()
}

/// Docker's network namespaces (`/run/docker/netns/ID`) of the containers whose name starts
/// with `prefix`: the keys of those that exist now, added to `seen`.
fn watch_netns(prefix: &str, seen: &mut BTreeSet<String>) {
    let ids = Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("name={prefix}")])
        .output()
        .unwrap();
    let ids: Vec<String> = String::from_utf8_lossy(&ids.stdout)
        .lines()
        .map(String::from)
        .collect();
    seen.extend(sandbox_keys(&ids));
}

fn sandbox_keys(ids: &[String]) -> Vec<String> {
    if ids.is_empty() {
        return Vec::new();
    }
    let o = Command::new("docker")
        .arg("inspect")
        .args(["-f", "{{.NetworkSettings.SandboxKey}}"])
        .args(ids)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// Of the network namespaces in `seen`, those still on the host that no container holds.
fn orphan_netns(seen: &BTreeSet<String>) -> Vec<String> {
    let ids = Command::new("docker").args(["ps", "-aq"]).output().unwrap();
    let ids: Vec<String> = String::from_utf8_lossy(&ids.stdout)
        .lines()
        .map(String::from)
        .collect();
    let held: BTreeSet<String> = sandbox_keys(&ids).into_iter().collect();
    seen.iter()
        .filter(|n| std::path::Path::new(n).exists() && !held.contains(*n))
        .map(|n| format!("network namespace {n}"))
        .collect()
}

/// Firewall rules left: any rule naming these labs' links, and more than one copy of the shared
/// `DOCKER-USER` rule (one copy is expected while any lab exists on the host).
fn firewall_leftovers(labs: &[String]) -> Vec<String> {
    let prefixes: Vec<String> = labs
        .iter()
        .map(|l| v6lab_runtime::names::link_prefix(l))
        .collect();
    let mut out = Vec::new();
    for tool in ["iptables-save", "ip6tables-save"] {
        let o = Command::new(tool).output().unwrap();
        let text = String::from_utf8_lossy(&o.stdout);
        let shared = text
            .lines()
            .filter(|l| *l == "-A DOCKER-USER -i v6l+ -o v6l+ -j ACCEPT")
            .count();
        if shared > 1 {
            out.push(format!(
                "{tool}: {shared} copies of the shared DOCKER-USER rule"
            ));
        }
        for l in text.lines() {
            if prefixes.iter().any(|p| l.contains(p.as_str()))
                || labs.iter().any(|n| l.contains(n.as_str()))
            {
                out.push(format!("{tool}: {l}"));
            }
        }
    }
    out
}

/// f. 100 `up`/`down` cycles with `kill -9` of `up` at random points, then 3 `kill -9` of the
/// controller during a class creation: afterwards nothing of these labs is left on the host.
#[test]
fn f_killed_up_and_killed_controller_leave_nothing() {
    let _alone = machine_wide();
    let start = Instant::now();
    // The network namespaces of this case's containers, noted while they exist.
    let prefix = format!("v6lab-adv{}f", std::process::id() % 100_000);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let netns_watch = {
        let (stop, prefix) = (stop.clone(), prefix.clone());
        std::thread::spawn(move || {
            let mut seen = BTreeSet::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                watch_netns(&prefix, &mut seen);
                std::thread::sleep(Duration::from_millis(200));
            }
            seen
        })
    };
    let down_at = std::sync::Mutex::new(std::collections::HashMap::<String, (f64, f64)>::new());
    let dir = std::env::temp_dir().join(format!("v6lab-adv-f-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let t = tiny_topology(&dir, "2001:db8:f", "198.18.0");
    let seed: u64 = std::env::var("V6LAB_ADVERSARIAL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .subsec_nanos() as u64
                | 1
        });
    eprintln!("adversarial f: seed {seed} (V6LAB_ADVERSARIAL_SEED replays it)");
    let names: Vec<String> = (0..100)
        .map(|i| format!("adv{}f{i:03}", std::process::id() % 100_000))
        .collect();
    // 4 at a time; each kills its `up` after a random 0..4 s (or lets it finish), then `down`.
    let (killed, finished, failures) = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..4)
            .map(|w| {
                let (names, t, down_at) = (&names, &t, &down_at);
                sc.spawn(move || {
                    let mut rng = seed.wrapping_mul(w as u64 * 2 + 1) | 1;
                    let (mut killed, mut finished, mut failures) = (0, 0, Vec::new());
                    for name in names.iter().skip(w).step_by(4) {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        let delay = Duration::from_millis(rng % 4000);
                        let mut up = Command::new(bin())
                            .args(["up", t.to_str().unwrap(), "--name", name, "--quiet"])
                            .stdout(Stdio::null())
                            .stderr(Stdio::null())
                            .spawn()
                            .unwrap();
                        let t0 = Instant::now();
                        loop {
                            if up.try_wait().unwrap().is_some() {
                                finished += 1;
                                break;
                            }
                            if t0.elapsed() >= delay {
                                up.kill().unwrap();
                                up.wait().unwrap();
                                killed += 1;
                                break;
                            }
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        let began = epoch();
                        let o = v6lab(&["down", name, "--quiet"]);
                        down_at
                            .lock()
                            .unwrap()
                            .insert(name.clone(), (began, epoch()));
                        if !o.status.success() {
                            failures.push(format!(
                                "down {name}: {}",
                                String::from_utf8_lossy(&o.stderr)
                            ));
                        }
                    }
                    (killed, finished, failures)
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap())
            .fold((0, 0, Vec::new()), |mut acc, (k, f, e)| {
                acc.0 += k;
                acc.1 += f;
                acc.2.extend(e);
                acc
            })
    });
    let cycles_took = start.elapsed();
    assert!(failures.is_empty(), "{failures:#?}");

    // The controller, killed three times while it creates a class.
    let t_class = Instant::now();
    let mut s = Serve::start("adv-f");
    let class = class_name("f");
    let v = s.class_create_file(&t, &class, 4, "30m");
    let class_labs: Vec<String> = class_labs(&v).into_iter().map(|l| l.0).collect();
    let mut at_kill = Vec::new();
    for k in 1..=3u32 {
        wait_for("creation to start", Duration::from_secs(60), || {
            class_labs
                .iter()
                .any(|l| !leftovers(l).is_empty())
                .then_some(())
        });
        // Later and later into the creation (a kill point, not a wait for anything).
        std::thread::sleep(Duration::from_millis(400) * k);
        s.kill9();
        at_kill.push(class_labs.iter().map(|l| leftovers(l).len()).sum::<usize>());
        s.spawn();
    }
    s.wait_ready(&class, 4);
    let o = s.cli(&["class", "delete", &class]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut all = names.clone();
    all.extend(class_labs.iter().cloned());
    wait_for_or(Duration::from_secs(90), || lab_leftovers(&all));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let netns = netns_watch.join().unwrap();
    // The engine deletes a removed container's namespace file lazily (its garbage collection
    // of unused sandbox paths runs once a minute), so allow more than a minute for those.
    let left: BTreeSet<String> = wait_for_or(Duration::from_secs(90), || {
        let mut l = lab_leftovers(&all);
        l.extend(orphan_netns(&netns));
        l.extend(firewall_leftovers(&all));
        l
    })
    .into_iter()
    .collect();
    drop(s);
    eprintln!(
        "adversarial f: 100 up/down cycles ({killed} up killed, {finished} finished) in {}; \
         class with 3 controller kills (objects at each kill: {at_kill:?}) in {}; left: {}",
        secs(cycles_took),
        secs(t_class.elapsed()),
        left.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
    // When a container was made tells whether the engine finished a killed `up`'s request after
    // that lab's `down` had run.
    let down_at = down_at.into_inner().unwrap();
    let created = |line: &String| -> String {
        let (Some(lab), Some(c)) = (line.split(':').next(), line.split("container ").nth(1)) else {
            return String::new();
        };
        let o = Command::new("docker")
            .args(["inspect", "-f", "{{.Created}}", c])
            .output()
            .unwrap();
        let at = String::from_utf8_lossy(&o.stdout).trim().to_owned();
        let o = Command::new("date")
            .args(["-d", &at, "+%s.%N"])
            .output()
            .unwrap();
        let at: f64 = String::from_utf8_lossy(&o.stdout)
            .trim()
            .parse()
            .unwrap_or(0.0);
        match down_at.get(lab) {
            Some((began, _)) if at < *began => {
                format!(" (made {:.2} s before its `down` began)", began - at)
            }
            Some((_, ended)) if at < *ended => format!(
                " (made while its `down` ran, {:.2} s before it ended: the engine finished a \
                 request of the killed `up`)",
                ended - at
            ),
            Some((_, ended)) => format!(" (made {:.2} s after its `down` ended)", at - ended),
            None => String::new(),
        }
    };
    let left: BTreeSet<String> = left.iter().map(|l| format!("{l}{}", created(l))).collect();
    assert!(
        left.is_empty(),
        "left on the host:\n{}",
        left.into_iter().collect::<Vec<_>>().join("\n")
    );
}

/// Polls `f` until it returns nothing (or `deadline`); returns its last answer.
fn wait_for_or(deadline: Duration, mut f: impl FnMut() -> Vec<String>) -> Vec<String> {
    let start = Instant::now();
    loop {
        let v = f();
        if v.is_empty() || start.elapsed() > deadline {
            return v;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The host's own addresses (link-local ones excepted: they have no meaning off their link).
fn host_addresses() -> Vec<(String, IpAddr)> {
    let o = Command::new("ip")
        .args(["-j", "addr", "show"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut out = Vec::new();
    for l in v.as_array().unwrap() {
        let ifname = l["ifname"].as_str().unwrap_or("").to_owned();
        for a in l["addr_info"].as_array().into_iter().flatten() {
            if a["scope"] == "link" {
                continue;
            }
            if let Some(ip) = a["local"].as_str().and_then(|s| s.parse().ok()) {
                out.push((ifname.clone(), ip));
            }
        }
    }
    out
}

/// Every route of a node, both families, all tables: (family, route).
fn node_routes(lab: &str, node: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for fam in ["-4", "-6"] {
        let (code, json, err) = node_sh(lab, node, &format!("ip -j {fam} route show table all"));
        assert_eq!(code, 0, "{err}");
        let v: Value = serde_json::from_str(&json).unwrap();
        out.extend(v.as_array().unwrap().iter().cloned());
    }
    out
}

/// Whether `ip` lies in `net` (`a.b.c.d/len` or `x::/len`).
fn within(ip: IpAddr, net: &str) -> bool {
    let n: ipnet::IpNet = net.parse().unwrap();
    n.contains(&ip)
}

/// g. The reachability matrix: from a node, nothing outside its lab is reachable (the host's
/// addresses, the controller's ports, docker0's address, another lab), counted on the host
/// side; no node has a route beyond its lab; within the lab, everything connected is reachable.
#[test]
fn g_reachability_matrix() {
    let _alone = machine_wide();
    let s = Serve::with("adv-g", "0s", true);
    // Prefixes of their own, so that the counters below see only this test's traffic.
    let ta = tiny_topology(&s.dir, "3fff:ad:a", "198.19.173");
    let tb = tiny_topology(&s.dir, "3fff:ad:b", "198.19.174");
    let a = Lab {
        name: format!("adv{}ga", std::process::id() % 100_000),
    };
    let b = Lab {
        name: format!("adv{}gb", std::process::id() % 100_000),
    };
    for (lab, t) in [(&a, &ta), (&b, &tb)] {
        v6lab_ok(&["up", t.to_str().unwrap(), "--name", &lab.name, "--quiet"]);
    }
    let lab_nets = ["3fff:ad:a::/64", "198.19.173.0/24"];

    // Routing tables: every route stays on the node's own interfaces, every gateway in the lab.
    for node in ["r1", "h1"] {
        for r in node_routes(&a.name, node) {
            let dev = r["dev"].as_str().unwrap_or("");
            assert!(
                dev == "lo" || dev == "eth1",
                "{node} has a route off its lab's interfaces: {r}"
            );
            if let Some(gw) = r["gateway"].as_str() {
                let gw: IpAddr = gw.parse().unwrap();
                assert!(
                    lab_nets.iter().any(|n| within(gw, n)) || within(gw, "fe80::/10"),
                    "{node} routes through {gw}, outside its lab: {r}"
                );
            }
        }
    }
    // Within the lab: every node reaches every other node, both families.
    let mut inside = 0;
    for (from, to) in [("h1", "1"), ("r1", "10")] {
        for target in [format!("3fff:ad:a::{to}"), format!("198.19.173.{to}")] {
            let (code, out, _) = node_sh(&a.name, from, &format!("ping -c 1 -W 2 {target}"));
            assert_eq!(
                code, 0,
                "{from} does not reach {target} in its own lab:\n{out}"
            );
            inside += 1;
        }
    }

    // The targets outside the lab.
    let docker0 = host_addresses()
        .into_iter()
        .filter(|(i, _)| i == "docker0")
        .map(|(_, a)| a)
        .collect::<Vec<_>>();
    assert!(!docker0.is_empty(), "docker0 has no address here");
    let mut targets: Vec<(String, IpAddr)> = host_addresses()
        .into_iter()
        .map(|(i, a)| (format!("the host ({i})"), a))
        .collect();
    for ip in [
        "3fff:ad:b::1",
        "3fff:ad:b::10",
        "198.19.174.1",
        "198.19.174.10",
    ] {
        targets.push(("lab B".into(), ip.parse().unwrap()));
    }
    let http_port: u16 = s.url.rsplit(':').next().unwrap().parse().unwrap();
    let ports = [http_port, s.ssh_port.unwrap()];

    // Host-side counters: what arrives from lab A's links for these targets (proves the probes
    // were sent), what the host takes in from them, what leaves lab A's links routed; and a
    // safety net: nothing the host might answer the probing node leaves the host.
    let prefix = format!("{}+", v6lab_runtime::names::link_prefix(&a.name));
    let mut fw = Counters::new("g");
    let mut arrived = Vec::new();
    for (_, ip) in &targets {
        let tool = if ip.is_ipv6() {
            "ip6tables"
        } else {
            "iptables"
        };
        arrived.push(fw.add(
            tool,
            "-A",
            &[
                "-t",
                "raw",
                "PREROUTING",
                "-i",
                &prefix,
                "-d",
                &ip.to_string(),
            ],
        ));
    }
    let mut taken = Vec::new();
    let mut routed = Vec::new();
    let mut answered = Vec::new();
    for (tool, net, h1) in [
        ("iptables", "198.19.173.0/24", "198.19.173.10"),
        ("ip6tables", "3fff:ad:a::/64", "3fff:ad:a::10"),
    ] {
        answered.push(fw.add(tool, "-I", &["-t", "raw", "OUTPUT", "-d", h1, "-j", "DROP"]));
        taken.push(fw.add(tool, "-A", &["INPUT", "-i", &prefix]));
        routed.push(fw.add(
            tool,
            "-A",
            &[
                "-t",
                "mangle",
                "POSTROUTING",
                "-s",
                net,
                "-m",
                "physdev",
                "!",
                "--physdev-is-bridged",
            ],
        ));
    }

    // Probes from h1, first as the lab routes them, then forced onto the host: a route to the
    // target on the link and the host bridge's MAC address as its neighbour.
    let bridge = v6lab_runtime::names::bridge(&a.name, 0).unwrap();
    let mac = std::fs::read_to_string(format!("/sys/class/net/{bridge}/address"))
        .unwrap()
        .trim()
        .to_owned();
    let mut probes = 0;
    let mut reached = Vec::new();
    for forced in [false, true] {
        for (what, ip) in &targets {
            let fam = if ip.is_ipv6() { "-6" } else { "-4" };
            let host = if ip.is_ipv6() {
                format!("[{ip}]")
            } else {
                ip.to_string()
            };
            let mut cmd = String::new();
            if forced && !ip.is_loopback() {
                cmd.push_str(&format!(
                    "ip {fam} route replace {ip} dev eth1 && \
                     ip {fam} neigh replace {ip} lladdr {mac} dev eth1 nud permanent && "
                ));
            }
            // A node's loopback is its own: only the controller's ports matter there.
            if !ip.is_loopback() {
                cmd.push_str(&format!(
                    "ping {fam} -n -c 1 -W 1 {ip} >/dev/null 2>&1 && echo ping; "
                ));
            }
            for p in ports {
                cmd.push_str(&format!(
                    "curl -s -m 1 -o /dev/null http://{host}:{p}/ && echo tcp:{p}; "
                ));
            }
            let (_, out, _) = node_sh(&a.name, "h1", &cmd);
            probes += usize::from(!ip.is_loopback()) + ports.len();
            for l in out.lines() {
                if !l.is_empty() {
                    reached.push(format!("{what} {ip} ({l}, forced: {forced})"));
                }
            }
        }
    }
    let sum = |keys: &[usize]| keys.iter().map(|k| fw.packets(*k)).sum::<u64>();
    let (n_arrived, n_taken, n_routed, n_answered) =
        (sum(&arrived), sum(&taken), sum(&routed), sum(&answered));
    eprintln!(
        "adversarial g: {} targets outside the lab, {probes} probes: {} reached; host side: \
         {n_arrived} packets arrived at the lab's links, {n_taken} taken in by the host, \
         {n_routed} routed out, {n_answered} answers; {inside} paths inside the lab all reachable",
        targets.len(),
        reached.len()
    );
    assert!(
        reached.is_empty(),
        "reachable from the lab:\n{}",
        reached.join("\n")
    );
    assert_eq!(n_taken, 0, "the host took in packets from the lab");
    assert_eq!(n_routed, 0, "the host routed packets out of the lab");
    assert_eq!(
        n_answered,
        0,
        "the host answered the lab (IPv4, IPv6): {:?}",
        answered.iter().map(|k| fw.packets(*k)).collect::<Vec<_>>()
    );
    assert!(
        n_arrived > 0,
        "no probe reached the host side: the matrix proves nothing"
    );
    drop(fw);
    drop((a, b));
}
