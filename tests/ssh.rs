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
