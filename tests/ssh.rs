//! The SSH gateway for real: `v6lab serve` on loopback with `--ssh-listen`, the Docker engine, a
//! class of labs, and the OpenSSH client (the password given through SSH_ASKPASS).

mod common;

use common::serve::Serve;
use common::*;
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A controller with an SSH gateway, and the OpenSSH client pointed at it.
fn start(test: &str) -> Serve {
    let s = Serve::with(&format!("ssh-{test}"), "0s", true);
    // The password comes from the environment through this helper, never a terminal.
    let askpass = s.dir.join("askpass.sh");
    std::fs::write(
        &askpass,
        "#!/bin/sh\nprintf '%s\\n' \"$V6LAB_TEST_TOKEN\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o700)).unwrap();
    s
}

trait Ssh {
    fn ssh(&self, user: &str, token: &str, options: &[&str], remote: &[&str]) -> Command;
    fn run(&self, user: &str, token: &str, remote: &[&str]) -> (i32, String, String);
    fn interactive(&self, user: &str, token: &str, input: &str) -> (i32, String, String);
}

impl Ssh for Serve {
    /// `ssh` with this gateway's port, no host key checks, password authentication only, and
    /// `token` as the password.
    fn ssh(&self, user: &str, token: &str, options: &[&str], remote: &[&str]) -> Command {
        let mut c = Command::new("ssh");
        c.args([
            "-F",
            "/dev/null",
            "-p",
            &self.ssh_port.expect("a gateway").to_string(),
        ])
        .args(["-o", "StrictHostKeyChecking=no"])
        .args(["-o", "UserKnownHostsFile=/dev/null"])
        .args(["-o", "LogLevel=ERROR"])
        .args(["-o", "PreferredAuthentications=password"])
        .args(["-o", "PubkeyAuthentication=no"])
        .args(["-o", "NumberOfPasswordPrompts=1"])
        .args(["-o", "ConnectTimeout=20"])
        .args(options)
        .arg(format!("{user}@127.0.0.1"));
        if !remote.is_empty() {
            c.arg("--").args(remote);
        }
        c.env("SSH_ASKPASS", self.dir.join("askpass.sh"))
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("DISPLAY", ":0")
            .env("V6LAB_TEST_TOKEN", token);
        c
    }

    /// Runs a command through the gateway (no terminal, no input): (exit code, stdout, stderr).
    fn run(&self, user: &str, token: &str, remote: &[&str]) -> (i32, String, String) {
        let o = self
            .ssh(user, token, &[], remote)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    /// An interactive session with a terminal (`ssh -tt`), typing `input` then closing it.
    fn interactive(&self, user: &str, token: &str, input: &str) -> (i32, String, String) {
        let mut child = self
            .ssh(user, token, &["-tt"], &[])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let o = wait_output(child, Duration::from_secs(60));
        (
            o.status.code().unwrap_or(-1),
            plain(&String::from_utf8_lossy(&o.stdout)),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }
}

/// Waits for a child with a deadline (killing it after), collecting its output.
fn wait_output(mut child: Child, deadline: Duration) -> std::process::Output {
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out.read_to_end(&mut b);
        b
    });
    let t_err = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err.read_to_end(&mut b);
        b
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let s = child.wait().unwrap();
            let o = String::from_utf8_lossy(&t_out.join().unwrap()).into_owned();
            let e = String::from_utf8_lossy(&t_err.join().unwrap()).into_owned();
            panic!("ssh still running after {deadline:?} ({s:?}):\n{o}\n{e}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    std::process::Output {
        status,
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
    }
}

fn class_name(tag: &str) -> String {
    format!("ssh{}{tag}", std::process::id() % 100_000)
}

/// r1's planned address on the LAN (without the prefix length).
fn r1_address() -> String {
    let plan = plan_json("ipv6-basics");
    let r1 = plan["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "r1")
        .unwrap();
    let a = r1["interfaces"][0]["ipv6"]["address"].as_str().unwrap();
    a.split('/').next().unwrap().to_owned()
}

/// Terminal output without escape sequences (bash turns bracketed paste on and off).
fn plain(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        } else if c != '\r' {
            out.push(c);
        }
    }
    out
}

fn refused((code, out, err): &(i32, String, String)) -> bool {
    *code == 255 && out.is_empty() && err.contains("Permission denied")
}

#[test]
fn students_reach_their_own_nodes_and_nothing_else() {
    let mut s = start("students");
    // The host key: made at first start, private.
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(s.dir.join("ssh_host_ed25519_key")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
    let class = class_name("st");
    let v = s.class_create("ipv6-basics", &class, 2, "15m");
    let labs: Vec<(String, String, String)> = v["labs"]
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
        .collect();
    assert_eq!(labs.len(), 2);
    s.wait_ready(&class, 2);
    let (lab_a, student_a, token_a) = labs[0].clone();
    let (lab_b, student_b, token_b) = labs[1].clone();
    let r1 = r1_address();

    // A command in a named node: its output, on stdout, as the node prints it.
    let (code, out, err) = s.run(&format!("{student_a}+r1"), &token_a, &["ip", "-6", "addr"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains(&format!("{r1}/64")), "no {r1} on r1:\n{out}");
    assert!(!out.contains('\r'), "a command without a terminal got CRs");
    // The exit status comes back; stdout and stderr stay apart.
    let (code, _, _) = s.run(&format!("{student_a}+h1"), &token_a, &["false"]);
    assert_eq!(code, 1);
    let (code, out, err) = s.run(
        &format!("{student_a}+h1"),
        &token_a,
        &["echo out; echo err >&2; exit 3"],
    );
    assert_eq!((code, out.as_str()), (3, "out\n"), "stderr: {err}");
    assert!(err.contains("err"), "{err}");
    // The lab name works as the user name too; so does the other student with their own token.
    let (code, out, _) = s.run(&format!("{lab_a}+r1"), &token_a, &["hostname"]);
    assert_eq!(code, 0);
    assert!(!out.trim().is_empty());
    let (code, out, err) = s.run(&format!("{student_b}+r1"), &token_b, &["ip", "-6", "addr"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("{r1}/64")));
    // Several nodes and none named: a command cannot guess.
    let (code, _, err) = s.run(&student_a, &token_a, &["true"]);
    assert_eq!(code, 1);
    assert!(err.contains("r1, h1, h2"), "{err}");
    // A node the lab does not have.
    let (code, _, err) = s.run(&format!("{student_a}+nope"), &token_a, &["true"]);
    assert_eq!(code, 1);
    assert!(err.contains("no node nope"), "{err}");

    // Refusals all look alike: a wrong token, another student's name or lab, an unknown name.
    let wrong = "v6s_0000000000000000000000000000000000000000000000000000000000000000";
    let normalize =
        |r: &(i32, String, String), user: &str| (r.0, r.1.clone(), r.2.replace(user, "USER"));
    let cases = [
        (format!("{student_a}+r1"), wrong.to_owned()),
        (format!("{student_b}+r1"), token_a.clone()),
        (format!("{lab_b}+r1"), token_a.clone()),
        (student_b.clone(), token_a.clone()),
        ("admin".to_owned(), token_a.clone()),
        ("nobody+r1".to_owned(), token_a.clone()),
        (format!("{student_a}+r1"), String::new()),
    ];
    let mut first = None;
    for (user, token) in &cases {
        let started = Instant::now();
        let r = s.run(user, token, &["hostname"]);
        assert!(refused(&r), "{user} was not refused: {r:?}");
        assert!(
            started.elapsed() >= Duration::from_millis(900),
            "a refusal came without the delay"
        );
        let n = normalize(&r, user);
        match &first {
            None => first = Some(n),
            Some(f) => assert_eq!(f, &n, "refusals differ"),
        }
    }

    // The administrator reaches any lab by its name.
    let admin = s.admin_token();
    let (code, out, err) = s.run(&format!("{lab_b}+r1"), &admin, &["ip", "-6", "addr"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("{r1}/64")));
    let (code, _, err) = s.run("no-such-lab+r1", &admin, &["true"]);
    assert_eq!(code, 1);
    assert!(err.contains("no lab no-such-lab"), "{err}");

    // A terminal session: a login shell in the node, the default terminal size.
    let (code, out, err) = s.interactive(
        &format!("{student_a}+h1"),
        &token_a,
        "echo $((6*7)); stty size; exit\n",
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.lines().any(|l| l.trim() == "42"), "no 42 in:\n{out}");
    assert!(
        out.lines().any(|l| l.trim() == "24 80"),
        "no size in:\n{out}"
    );
    // The menu: numbers, names and roles; a node by its number, back to the menu, Ctrl-D.
    let (code, out, err) = s.interactive(&student_a, &token_a, "2\necho menu-$((6*7)); exit\n\x04");
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains(&format!("Lab {lab_a}")), "{out}");
    assert!(out.contains("1  r1  router"), "{out}");
    assert!(out.contains("2  h1  host"), "{out}");
    assert!(out.contains("menu-42"), "{out}");
    assert!(out.contains("[left h1: exit 0]"), "{out}");
    // The administrator's menu: labs, then nodes.
    let (code, out, err) = s.interactive(
        "admin",
        &admin,
        &format!("{lab_b}\nr1\necho admin-$((6*7)); exit\n"),
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains(&lab_a) && out.contains(&lab_b), "{out}");
    assert!(out.contains("admin-42"), "{out}");

    // A client that vanishes hangs up its shell, and the shell its jobs, as with sshd.
    let mut gone = s
        .ssh(&format!("{student_a}+h2"), &token_a, &["-tt"], &[])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut gone_in = gone.stdin.take().unwrap();
    gone_in.write_all(b"sleep 4321\n").unwrap();
    let in_h2 = |what: &str| {
        let (_, ps, _) = s.run(&format!("{student_a}+h2"), &token_a, &["ps -eo args"]);
        ps.lines().any(|l| l.starts_with(what))
    };
    wait_for("the shell's job to run", Duration::from_secs(30), || {
        in_h2("sleep 4321").then_some(())
    });
    gone.kill().unwrap();
    gone.wait().unwrap();
    drop(gone_in);
    wait_for(
        "the shell and its job to end",
        Duration::from_secs(15),
        || (!in_h2("sleep 4321") && !in_h2("/bin/bash -l")).then_some(()),
    );

    // Sessions end when their lab does: one with a terminal, one without.
    let mut shell = s
        .ssh(&format!("{student_a}+h1"), &token_a, &["-tt"], &[])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut shell_in = shell.stdin.take().unwrap();
    shell_in.write_all(b"echo up-$((6*7))\n").unwrap();
    let command = s
        .ssh(&format!("{student_b}+r1"), &token_b, &[], &["sleep", "600"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Both are in (a login takes about a second); then the class goes.
    std::thread::sleep(Duration::from_secs(4));
    let o = s.cli(&["class", "delete", &class]);
    assert!(o.status.success());
    let deleted = Instant::now();
    let shell_out = wait_output(shell, Duration::from_secs(30));
    let command_out = wait_output(command, Duration::from_secs(30));
    assert!(deleted.elapsed() < Duration::from_secs(15));
    drop(shell_in);
    let text = String::from_utf8_lossy(&shell_out.stdout);
    assert!(text.contains("up-42"), "{text}");
    assert!(text.contains("has ended"), "{text}");
    assert_eq!(shell_out.status.code(), Some(129), "{text}");
    let err = String::from_utf8_lossy(&command_out.stderr);
    assert!(err.contains("has ended"), "{err}");
    assert_eq!(command_out.status.code(), Some(129), "{err}");

    // Tokens never reach the log.
    let log = std::fs::read_to_string(s.dir.join("serve.log")).unwrap();
    for t in [&token_a, &token_b, &admin] {
        assert!(!log.contains(t.as_str()), "a token is in the log");
    }
    assert!(log.contains("ssh: login refused"), "{log}");
}

#[test]
fn failed_logins_block_wrong_tokens_but_never_the_right_one() {
    let s = start("ratelimit");
    let admin = s.admin_token();
    // The administrator's login works (there is no lab: a command says so).
    let (code, _, err) = s.run("admin", &admin, &["true"]);
    assert_eq!(code, 1, "{err}");
    let wrong = "v6a_0000000000000000000000000000000000000000000000000000000000000000";
    for _ in 0..10 {
        let r = s.run("admin", wrong, &["true"]);
        assert!(refused(&r), "{r:?}");
    }
    // The right token still works from this address, at once.
    let (code, _, err) = s.run("admin", &admin, &["true"]);
    assert_eq!(code, 1, "the right token was refused: {err}");
    // The HTTP API shares the count: a wrong token is answered 429, the right one 200.
    let get = |token: &str| {
        reqwest::blocking::Client::new()
            .get(format!("{}/api/classes", s.url))
            .bearer_auth(token)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(get(wrong), 429);
    assert_eq!(get(&admin), 200);
}

#[test]
fn sessions_end_when_the_lab_expires() {
    let mut s = start("expiry");
    let class = class_name("ex");
    let v = s.class_create("ipv6-basics", &class, 1, "40s");
    let expires = v["expires"].as_i64().unwrap();
    let lab = v["labs"][0]["name"].as_str().unwrap().to_owned();
    let student = v["labs"][0]["student"].as_str().unwrap().to_owned();
    let token = v["labs"][0]["token"].as_str().unwrap().to_owned();
    s.wait_ready(&class, 1);
    let session = s
        .ssh(&format!("{student}+h1"), &token, &[], &["sleep", "600"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let o = wait_output(session, Duration::from_secs(120));
    let ended = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(129), "{err}");
    assert!(err.contains("has ended"), "{err}");
    assert!(
        ended >= expires && ended <= expires + 10,
        "the session ended {}s after the lab's expiry",
        ended - expires
    );
    wait_for(
        "the expired lab to be removed",
        Duration::from_secs(30),
        || leftovers(&lab).is_empty().then_some(()),
    );
}

/// A class of one lab: (lab, student, token).
fn one_lab(s: &mut Serve, tag: &str) -> (String, String, String) {
    let class = class_name(tag);
    let v = s.class_create("ipv6-basics", &class, 1, "15m");
    let lab = v["labs"][0]["name"].as_str().unwrap().to_owned();
    let student = v["labs"][0]["student"].as_str().unwrap().to_owned();
    let token = v["labs"][0]["token"].as_str().unwrap().to_owned();
    s.wait_ready(&class, 1);
    (lab, student, token)
}

/// Processes in h1 of `lab` whose command line is `what` (seen by the engine, not the gateway).
fn running(lab: &str, what: &str) -> usize {
    let o = v6lab(&["exec", lab, "h1", "--", "ps", "-eo", "args"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| l.trim() == what)
        .count()
}

/// The pid of the `v6lab serve` that uses this test's state directory.
fn controller_pid(s: &Serve) -> u32 {
    let dir = s.dir.to_str().unwrap().to_owned();
    let pids: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|pid: &u32| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
            args.contains(&&b"serve"[..]) && args.contains(&dir.as_bytes())
        })
        .collect();
    assert_eq!(pids.len(), 1, "controllers using {dir}: {pids:?}");
    pids[0]
}

/// A process's resident memory (VmRSS) in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// `n` TCP connections from `from` (a loopback address) to the gateway that never say a word;
/// non-blocking, so [`closed`] can look at them.
fn silent(port: u16, from: [u8; 4], n: usize) -> Vec<std::net::TcpStream> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut out = Vec::new();
        for _ in 0..n {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind((from, 0).into()).unwrap();
            let c = socket.connect(([127, 0, 0, 1], port).into()).await.unwrap();
            let c = c.into_std().unwrap();
            c.set_nonblocking(true).unwrap();
            out.push(c);
        }
        out
    })
}

/// Whether the other side closed this connection (what it sent before is read and dropped).
fn closed(c: &std::net::TcpStream) -> bool {
    let mut buf = [0u8; 512];
    let mut c = c;
    loop {
        match c.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

#[test]
fn a_crowd_of_silent_connections_does_not_keep_students_out() {
    let mut s = start("crowd");
    let (_, student, token) = one_lab(&mut s, "cr");
    let user = format!("{student}+h1");
    let port = s.ssh_port.unwrap();
    let opened = Instant::now();
    // 600 from the students' own address (a classroom behind one NAT address, one of them
    // hostile), and 600 from 60 other addresses: more than the gateway keeps waiting in all.
    let mut crowd = silent(port, [127, 0, 0, 1], 600);
    for i in 0..60 {
        crowd.extend(silent(port, [127, 0, 1, i + 1], 10));
    }
    let opened_all = opened.elapsed();
    let held = wait_for(
        "the gateway to keep at most 512 connections waiting",
        Duration::from_secs(20),
        || {
            let held = crowd.iter().filter(|c| !closed(c)).count();
            (held <= 512).then_some(held)
        },
    );
    println!(
        "{} silent connections opened in {:?}; the gateway holds {held}",
        crowd.len(),
        opened.elapsed()
    );
    // A student from the crowded address, and one from an address of the other crowd.
    let t = Instant::now();
    let (code, out, err) = s.run(&user, &token, &["echo in-$((6*7))"]);
    println!("a login and a command through the crowd: {:?}", t.elapsed());
    assert_eq!((code, out.trim()), (0, "in-42"), "{err}");
    let t = Instant::now();
    let o = s
        .ssh(
            &user,
            &token,
            &["-o", "BindAddress=127.0.1.7"],
            &["echo in-42"],
        )
        .stdin(Stdio::null())
        .output()
        .unwrap();
    println!("the same from a crowded other address: {:?}", t.elapsed());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "in-42");
    let still = crowd.iter().filter(|c| !closed(c)).count();
    println!(
        "still held after the logins ({:?}): {still}",
        opened.elapsed()
    );
    // The rest are closed at the login deadline (30 s), not before.
    wait_for(
        "the gateway to close every silent connection",
        Duration::from_secs(60),
        || crowd.iter().all(closed).then_some(()),
    );
    let all_closed = opened.elapsed();
    println!("every silent connection closed {all_closed:?} after opening (deadline 30 s)");
    assert!(
        all_closed >= Duration::from_secs(25) && all_closed <= opened_all + Duration::from_secs(40),
        "the last silent connection closed {all_closed:?} after opening ({opened_all:?} to open)"
    );
}

#[test]
fn channels_and_sessions_are_bounded_per_connection_and_per_lab() {
    let mut s = start("bounds");
    let (lab, student, token) = one_lab(&mut s, "bd");
    let user = format!("{student}+h1");
    // One connection shared by OpenSSH's multiplexing: 8 sessions, then the 9th is refused.
    let control = s.dir.join("mux");
    let control = control.to_str().unwrap();
    let mut clients: Vec<Child> = Vec::new();
    clients.push(
        s.ssh(&user, &token, &["-M", "-S", control, "-N"], &[])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("the shared connection", Duration::from_secs(30), || {
        std::path::Path::new(control).exists().then_some(())
    });
    let sleeper = |options: &[&str]| {
        s.ssh(&user, &token, options, &["sleep 600"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    for _ in 0..8 {
        clients.push(sleeper(&["-S", control]));
    }
    wait_for(
        "8 commands on one connection",
        Duration::from_secs(60),
        || (running(&lab, "sleep 600") == 8).then_some(()),
    );
    let o = s
        .ssh(&user, &token, &["-S", control], &["true"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    println!(
        "a 9th session on one connection: {:?} {err}",
        o.status.code()
    );
    // (OpenSSH then makes a connection of its own for it.)
    assert!(err.contains("Session open refused by peer"), "{err}");

    // Other connections: up to 16 sessions in the lab, then a clear refusal.
    for _ in 0..8 {
        clients.push(sleeper(&[]));
    }
    wait_for("16 commands in the lab", Duration::from_secs(60), || {
        (running(&lab, "sleep 600") == 16).then_some(())
    });
    let (code, out, err) = s.run(&user, &token, &["echo in"]);
    println!("a 17th session in the lab: {code} {err}");
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert!(err.contains("16 SSH sessions open already"), "{err}");
    // One leaves: there is room again.
    let mut last = clients.pop().unwrap();
    last.kill().unwrap();
    last.wait().unwrap();
    wait_for("room for a session", Duration::from_secs(30), || {
        let (code, out, _) = s.run(&user, &token, &["echo in"]);
        (code == 0 && out == "in\n").then_some(())
    });
    // Clients that vanish hang up their commands (which would otherwise sleep on).
    for mut c in clients {
        c.kill().unwrap();
        c.wait().unwrap();
    }
    wait_for("the commands to end", Duration::from_secs(30), || {
        (running(&lab, "sleep 600") == 0).then_some(())
    });

    // 32 connections to the lab (no sessions): the next login is told why it gets nothing.
    let logins = s.log().matches("ssh: login peer").count();
    let idle: Vec<KillOnDrop> = (0..32)
        .map(|_| {
            KillOnDrop(
                s.ssh(&user, &token, &["-N"], &[])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap(),
            )
        })
        .collect();
    wait_for("32 connections to log in", Duration::from_secs(60), || {
        (s.log().matches("ssh: login peer").count() >= logins + 32).then_some(())
    });
    let (code, _, err) = s.run(&user, &token, &["true"]);
    assert_eq!(code, 1, "{err}");
    println!("a 33rd connection to the lab: {err}");
    assert!(err.contains("32 SSH connections open already"), "{err}");
    drop(idle);
    wait_for("room for a connection", Duration::from_secs(30), || {
        (s.run(&user, &token, &["true"]).0 == 0).then_some(())
    });
}

/// Restarts the controller of `s` (same state directory and ports) with `extra` arguments;
/// the returned child is stopped when dropped.
fn restart_with(s: &mut Serve, extra: &[&str]) -> KillOnDrop {
    s.kill9();
    let port = s.url.rsplit(':').next().unwrap().to_owned();
    let ssh = s.ssh_port.unwrap();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(s.dir.join("serve.log"))
        .unwrap();
    let child = Command::new(bin())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--ssh-listen", &format!("127.0.0.1:{ssh}")])
        .args([
            "--state-dir",
            s.dir.to_str().unwrap(),
            "--check-interval",
            "0s",
        ])
        .args(extra)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let child = KillOnDrop(child);
    let http = reqwest::blocking::Client::new();
    wait_for("the controller to answer", Duration::from_secs(60), || {
        http.get(format!("{}/healthz", s.url))
            .send()
            .ok()
            .filter(|r| r.status().is_success())
    });
    wait_for("the SSH gateway to listen", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", ssh)).ok()
    });
    child
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn commands_without_a_terminal_have_a_deadline() {
    let mut s = start("deadline");
    let _controller = restart_with(&mut s, &["--ssh-exec-timeout", "5s"]);
    let (lab, student, token) = one_lab(&mut s, "dl");
    let user = format!("{student}+h1");
    let t = Instant::now();
    let (code, _, err) = s.run(&user, &token, &["sleep 600"]);
    println!(
        "a command past its deadline ended after {:?}: {err}",
        t.elapsed()
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("stopped after 5s"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(30));
    wait_for("the command to be killed", Duration::from_secs(15), || {
        (running(&lab, "sleep 600") == 0).then_some(())
    });
    // A terminal session has no deadline.
    let (code, out, err) = s.interactive(&user, &token, "sleep 8; echo still-$((6*7)); exit\n");
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("still-42"), "{out}");
}

#[test]
fn a_client_that_does_not_read_keeps_the_controller_small() {
    let mut s = start("flood");
    let (lab, student, token) = one_lab(&mut s, "fl");
    let user = format!("{student}+h1");
    let pid = controller_pid(&s);
    let before = rss_kib(pid);
    let piped = |c: &mut Command| {
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
    };
    // Output floods, without a terminal and with one, to clients that never read them.
    let mut quiet = s.ssh(&user, &token, &[], &["cat /dev/zero"]);
    piped(&mut quiet);
    let quiet = quiet.stdin(Stdio::null()).spawn().unwrap();
    let mut tty = s.ssh(&user, &token, &["-tt"], &[]);
    piped(&mut tty);
    let mut tty = tty.stdin(Stdio::piped()).spawn().unwrap();
    let mut tty_in = tty.stdin.take().unwrap();
    tty_in.write_all(b"cat /dev/zero\n").unwrap();
    // An input flood to a command that never reads it.
    let zero = std::fs::File::open("/dev/zero").unwrap();
    let deaf = s
        .ssh(&user, &token, &[], &["sleep 600"])
        .stdin(zero)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the floods to run", Duration::from_secs(60), || {
        (running(&lab, "cat /dev/zero") == 2 && running(&lab, "sleep 600") == 1).then_some(())
    });
    let mut most = 0;
    let watch = Instant::now();
    while watch.elapsed() < Duration::from_secs(15) {
        most = most.max(rss_kib(pid));
        std::thread::sleep(Duration::from_millis(200));
    }
    println!(
        "controller RSS: {} MiB before, at most {} MiB during 15 s of floods to clients that do not read",
        before / 1024,
        most / 1024
    );
    assert!(
        most < before + 64 * 1024,
        "the controller grew from {before} KiB to {most} KiB"
    );
    // Meanwhile the gateway serves others.
    let (code, out, err) = s.run(&user, &token, &["echo ok"]);
    assert_eq!((code, out.as_str()), (0, "ok\n"), "{err}");
    // The command that reads nothing ends its session after 30 s of that.
    let o = wait_output(deaf, Duration::from_secs(60));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("read none of its input"), "{err}");
    drop(tty_in);
    for mut c in [quiet, tty] {
        c.kill().unwrap();
        c.wait().unwrap();
    }
    wait_for("the floods to end", Duration::from_secs(30), || {
        (running(&lab, "cat /dev/zero") + running(&lab, "sleep 600") == 0).then_some(())
    });
}
