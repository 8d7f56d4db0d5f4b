//! The controller for real: `v6lab serve` on loopback, the Docker engine, classes of labs.

mod common;

use common::serve::Serve;
use common::*;
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Labs (by the runtime's labels) whose name starts with `class-`: (name, nodes, running).
fn runtime_labs(class: &str) -> Vec<(String, u64, u64)> {
    let o = Command::new(bin())
        .args(["ls", "--output", "json"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let labs: Value = serde_json::from_slice(&o.stdout).unwrap();
    labs.as_array()
        .unwrap()
        .iter()
        .filter(|l| l["lab"].as_str().unwrap().starts_with(&format!("{class}-")))
        .map(|l| {
            (
                l["lab"].as_str().unwrap().to_owned(),
                l["nodes"].as_u64().unwrap(),
                l["running"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn class_name(tag: &str) -> String {
    format!("c{}{tag}", std::process::id() % 100_000)
}

/// The labs of a class (as `class show` gives it) and their student tokens.
fn labs_and_tokens(v: &Value) -> Vec<(String, String)> {
    v["labs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["name"].as_str().unwrap().to_owned(),
                l["token"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn student_tokens_open_only_their_own_lab() {
    let mut s = Serve::start("tokens");
    let class = class_name("tok");
    s.class_create("ipv6-basics", &class, 3, "15m");
    let v = s.wait_ready(&class, 3);
    let labs: Vec<(String, String)> = labs_and_tokens(&v);
    // The runtime holds the 3 labs, whole.
    let rt = runtime_labs(&class);
    assert_eq!(rt.len(), 3, "{rt:?}");
    assert!(rt.iter().all(|(_, n, r)| *n == 3 && *r == 3), "{rt:?}");
    for (i, (lab, token)) in labs.iter().enumerate() {
        assert!(token.len() >= 32, "token too short");
        assert_eq!(
            s.request("GET", &format!("/api/labs/{lab}"), Some(token)).0,
            200
        );
        assert_eq!(
            s.request("GET", &format!("/api/labs/{lab}/checks"), Some(token))
                .0,
            200
        );
        for (j, (other, _)) in labs.iter().enumerate() {
            if i != j {
                let (code, body) = s.request("GET", &format!("/api/labs/{other}"), Some(token));
                assert_eq!(code, 403, "{lab}'s token opened {other}");
                assert!(
                    !body.contains(other.as_str()),
                    "the refusal names the lab: {body}"
                );
                assert_eq!(
                    s.request("POST", &format!("/api/labs/{other}/checks"), Some(token))
                        .0,
                    403
                );
            }
        }
        // Management calls are the administrator's.
        assert_eq!(s.request("GET", "/api/classes", Some(token)).0, 403);
        assert_eq!(
            s.request("GET", &format!("/api/classes/{class}"), Some(token))
                .0,
            403
        );
        assert_eq!(
            s.request("DELETE", &format!("/api/classes/{class}"), Some(token))
                .0,
            403
        );
        assert_eq!(s.request("GET", "/api/labs", Some(token)).0, 403);
        // A lab that does not exist looks exactly like someone else's.
        let (code, body) = s.request("GET", "/api/labs/no-such-lab", Some(token));
        let (code2, body2) = s.request(
            "GET",
            &format!("/api/labs/{}", labs[(i + 1) % 3].0),
            Some(token),
        );
        assert_eq!((code, body), (code2, body2));
    }
    // Wrong or missing tokens: refused, without telling which labs exist.
    let existing = &labs[0].0;
    let wrong = "v6s_0000000000000000000000000000000000000000000000000000000000000000";
    let a = s.request("GET", &format!("/api/labs/{existing}"), Some(wrong));
    let b = s.request("GET", "/api/labs/no-such-lab", Some(wrong));
    let c = s.request("GET", &format!("/api/labs/{existing}"), None);
    assert_eq!(a.0, 401);
    assert_eq!(a, b);
    assert_eq!(c.0, 401);
    assert_eq!(s.request("GET", "/api/classes", None).0, 401);
    // The administrator sees everything.
    let admin = s.admin_token();
    assert_eq!(
        s.request("GET", &format!("/api/labs/{existing}"), Some(&admin))
            .0,
        200
    );
    assert_eq!(s.request("GET", "/api/classes", Some(&admin)).0, 200);
    // Tokens never reach the log, nor the database files in clear.
    let log = s.log();
    for (_, t) in &labs {
        assert!(!log.contains(t.as_str()), "a student token is in the log");
    }
    for f in ["v6lab.db", "v6lab.db-wal"] {
        let bytes = std::fs::read(s.dir.join(f)).unwrap_or_default();
        for (_, t) in &labs {
            let clear = bytes.windows(t.len()).any(|w| w == t.as_bytes());
            assert!(!clear, "a student token is in {f} in clear");
        }
    }
    assert!(
        !log.contains(&admin),
        "the administrator token is in the log"
    );
    // Deleting the class removes every lab.
    let o = s.cli(&["class", "delete", &class]);
    assert!(o.status.success());
    // Containers go first, then bridges and veths: wait for all of it.
    wait_for(
        "the class's labs to be removed",
        Duration::from_secs(60),
        || {
            (runtime_labs(&class).is_empty()
                && labs.iter().all(|(lab, _)| leftovers(lab).is_empty()))
            .then_some(())
        },
    );
}

#[test]
fn expired_class_is_gone_within_10_seconds() {
    let mut s = Serve::start("expiry");
    let class = class_name("exp");
    s.class_create("ipv6-basics", &class, 2, "20s");
    let v = s.wait_ready(&class, 2);
    let expires = v["expires"].as_i64().unwrap();
    let labs: Vec<String> = v["labs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        now() < expires,
        "the labs took the whole lifetime to come up"
    );
    wait_for(
        "the expired labs to disappear",
        Duration::from_secs(60),
        || labs.iter().all(|l| leftovers(l).is_empty()).then_some(()),
    );
    let gone = now();
    assert!(
        gone <= expires + 10,
        "gone {}s after expiry",
        gone - expires
    );
    assert!(gone >= expires, "removed before expiry");
    let o = s.cli(&["events", "--output", "json"]);
    let events = String::from_utf8_lossy(&o.stdout);
    assert!(
        events.contains("\"kind\":\"expiring\""),
        "no warning before expiry: {events}"
    );
    assert!(
        events.contains("\"kind\":\"expired\""),
        "no expiry event: {events}"
    );
}

#[test]
fn killed_controller_converges_after_restart() {
    let mut s = Serve::start("crash");
    let class = class_name("crash");
    s.class_create("ipv6-basics", &class, 4, "15m");
    // Kill it while the class is being created: some containers exist, not every lab is ready.
    wait_for("creation to start", Duration::from_secs(60), || {
        let labs = runtime_labs(&class);
        (!labs.is_empty()).then_some(())
    });
    s.kill9();
    let half: Vec<(String, u64, u64)> = runtime_labs(&class);
    let v_before = s.class_show(&class);
    assert!(
        v_before.is_none(),
        "the controller is dead, the API must be too"
    );
    s.spawn();
    let v = s.wait_ready(&class, 4);
    let want: Vec<String> = v["labs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap().to_owned())
        .collect();
    // Converged: every desired lab whole, nothing half-made, nothing else of the class.
    wait_for("every lab whole", Duration::from_secs(60), || {
        let rt = runtime_labs(&class);
        (rt.len() == 4
            && rt
                .iter()
                .all(|(l, n, r)| *n == 3 && *r == 3 && want.contains(l)))
        .then_some(())
    });
    for l in &want {
        let o = v6lab(&["exec", l, "r1", "--", "true"]);
        assert!(o.status.success(), "{l} is not usable");
    }
    eprintln!("at the kill: {half:?}");
}

#[test]
fn lab_expired_while_controller_was_down_is_removed_at_start() {
    let mut s = Serve::start("down");
    let class = class_name("dn");
    s.class_create("ipv6-basics", &class, 1, "12s");
    let v = s.wait_ready(&class, 1);
    let expires = v["expires"].as_i64().unwrap();
    let lab = v["labs"][0]["name"].as_str().unwrap().to_owned();
    s.kill9();
    // The lifetime ends while no controller runs: nothing removes the lab.
    wait_for("the lifetime to end", Duration::from_secs(60), || {
        (now() > expires + 1).then_some(())
    });
    assert!(
        !leftovers(&lab).is_empty(),
        "the lab vanished without a controller"
    );
    s.spawn();
    wait_for(
        "the expired lab to be removed at start-up",
        Duration::from_secs(15),
        || leftovers(&lab).is_empty().then_some(()),
    );
}

#[test]
fn progress_is_checked_periodically_and_streamed_to_the_right_student() {
    let mut s = Serve::with("progress", "2s", false);
    let class = class_name("prog");
    s.class_create("ipv6-basics", &class, 2, "15m");
    let v = s.wait_ready(&class, 2);
    let labs: Vec<(String, String)> = labs_and_tokens(&v);
    let (lab_a, token_a) = labs[0].clone();
    let (lab_b, _) = labs[1].clone();

    // Student A follows the event stream (Server-Sent Events) of their lab.
    let url = format!("{}/api/events?follow=true", s.url);
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        let resp = reqwest::blocking::Client::builder()
            .timeout(None)
            .build()
            .unwrap()
            .get(url)
            .bearer_auth(token_a)
            .send()
            .unwrap();
        for line in std::io::BufReader::new(resp).lines() {
            let Ok(line) = line else { break };
            if let Some(d) = line.strip_prefix("data:")
                && tx.send(d.trim().to_owned()).is_err()
            {
                break;
            }
        }
    });

    // Fresh labs: the controller finds the exercises failing.
    let admin = s.admin_token();
    let progress = |s: &Serve| -> Value {
        serde_json::from_str(
            &s.request(
                "GET",
                &format!("/api/classes/{class}/progress"),
                Some(&admin),
            )
            .1,
        )
        .unwrap()
    };
    let status = |p: &Value, lab: &str, ex: &str| -> Option<(bool, Option<i64>)> {
        let st = p["students"].as_array()?.iter().find(|x| x["lab"] == lab)?;
        let e = st["exercises"]
            .as_array()?
            .iter()
            .find(|e| e["exercise"] == ex)?;
        Some((e["passed"].as_bool()?, e["first_pass"].as_i64()))
    };
    wait_for("a first round of checks", Duration::from_secs(90), || {
        (status(&progress(&s), &lab_a, "slaac") == Some((false, None))).then_some(())
    });

    // Both students solve `slaac`; the board shows it, with the time of the first pass.
    let before = now();
    for lab in [&lab_a, &lab_b] {
        let o = v6lab(&["solve", lab, "slaac"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let first = wait_for(
        "slaac to pass on the board",
        Duration::from_secs(90),
        || match status(&progress(&s), &lab_a, "slaac") {
            Some((true, Some(t))) => Some(t),
            _ => None,
        },
    );
    assert!(
        first >= before - 1,
        "first pass {first} before the solution at {before}"
    );
    wait_for("lab B's slaac to pass too", Duration::from_secs(90), || {
        (status(&progress(&s), &lab_b, "slaac").map(|x| x.0) == Some(true)).then_some(())
    });

    // A's stream told A, and only about A's lab.
    let mut seen = Vec::new();
    wait_for(
        "the exercise-passed event on A's stream",
        Duration::from_secs(30),
        || {
            while let Ok(d) = rx.try_recv() {
                seen.push(serde_json::from_str::<Value>(&d).unwrap());
            }
            seen.iter()
                .any(|e| e["kind"] == "exercise-passed" && e["lab"] == lab_a.as_str())
                .then_some(())
        },
    );
    assert!(
        seen.iter().all(|e| e["lab"] == lab_a.as_str()),
        "student A saw events of other labs: {seen:?}"
    );
}

#[test]
fn controller_sweeps_links_that_a_killed_up_left() {
    let s = Serve::start("sweep");
    let name = lab_name("sweep");
    let t = topology("static-routing");
    let mut child = Command::new(bin())
        .args(["up", t.to_str().unwrap(), "--name", &name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed once its segments exist; then its containers vanish too (say, an engine restart):
    // bridges are left that no container and no desired lab owns.
    let prefix = v6lab_runtime::names::link_prefix(&name);
    let has_links = || {
        let o = Command::new("ip")
            .args(["-o", "link", "show"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .any(|l| l.contains(&format!(": {prefix}")))
    };
    wait_for("the lab's bridges", Duration::from_secs(60), || {
        has_links().then_some(())
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let ids = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=dev.v6lab.lab={name}"),
        ])
        .output()
        .unwrap();
    for id in String::from_utf8_lossy(&ids.stdout).lines() {
        Command::new("docker")
            .args(["rm", "-f", id])
            .output()
            .unwrap();
    }
    assert!(
        has_links(),
        "nothing left to sweep: the test proves nothing"
    );
    wait_for(
        "the controller to sweep the orphan links",
        Duration::from_secs(30),
        || leftovers(&name).is_empty().then_some(()),
    );
    drop(s);
}

#[test]
fn wrong_tokens_never_lock_out_the_right_one_and_the_state_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let s = Serve::start("limit");
    let admin = s.admin_token();
    let wrong = "v6s_0000000000000000000000000000000000000000000000000000000000000000";
    let mut refused = (0, 0);
    for _ in 0..1000 {
        match s.request("GET", "/api/classes", Some(wrong)).0 {
            401 => refused.0 += 1,
            429 => refused.1 += 1,
            other => panic!("a wrong token got {other}"),
        }
    }
    println!(
        "1000 wrong tokens: {} answered 401, {} answered 429",
        refused.0, refused.1
    );
    assert!(refused.1 > 0, "never blocked");
    // The right token from the same address works at once.
    assert_eq!(s.request("GET", "/api/classes", Some(&admin)).0, 200);
    assert_eq!(s.request("GET", "/api/classes", Some(wrong)).0, 429);
    let mode = |f: &str| {
        std::fs::metadata(s.dir.join(f))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(""), 0o700, "the state directory");
    for f in [
        "v6lab.db",
        "v6lab.db-wal",
        "v6lab.db-shm",
        "admin.token",
        "tokens.key",
    ] {
        if s.dir.join(f).exists() {
            assert_eq!(mode(f), 0o600, "{f}");
        }
    }
}

#[test]
fn check_now_runs_once_at_a_time_with_a_cooldown() {
    let mut s = Serve::start("cooldown");
    let class = class_name("cool");
    s.class_create("ipv6-basics", &class, 1, "15m");
    let v = s.wait_ready(&class, 1);
    let lab = v["labs"][0]["name"].as_str().unwrap().to_owned();
    let token = v["labs"][0]["token"].as_str().unwrap().to_owned();
    let path = format!("/api/labs/{lab}/checks");
    let (code, body) = s.request("POST", &path, Some(&token));
    assert_eq!(code, 200, "{body}");
    // At once again: refused, saying when to retry.
    let http = reqwest::blocking::Client::new();
    let again = http
        .post(format!("{}{path}", s.url))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(again.status().as_u16(), 429);
    let retry: u64 = again.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&retry), "Retry-After: {retry}");
    let err: Value = again.json().unwrap();
    assert!(
        err["error"].as_str().unwrap().contains("try again in"),
        "{err}"
    );
    assert_eq!(err["retry_after"], retry);
    // After the cooldown the lab can be checked again.
    std::thread::sleep(Duration::from_secs(retry));
    assert_eq!(s.request("POST", &path, Some(&token)).0, 200);
    // The bound on commands in nodes and the refusals are in the metrics.
    let (_, metrics) = s.request("GET", "/metrics", None);
    assert!(metrics.contains("v6lab_execs_limit 32"), "{metrics}");
    assert!(
        metrics.contains("v6lab_checks_refused_total 1"),
        "{metrics}"
    );
}

/// The `checked` time and detail of each exercise of a lab (the administrator's view).
fn lab_progress(s: &Serve, lab: &str) -> Vec<(i64, String)> {
    let (code, body) = s.request(
        "GET",
        &format!("/api/labs/{lab}/checks"),
        Some(&s.admin_token()),
    );
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["exercises"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["checked"].as_i64().unwrap_or(0),
                e["detail"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[test]
fn a_hostile_lab_never_delays_the_checks_of_the_others() {
    let mut s = Serve::with("hostile", "2s", false);
    let class = class_name("hos");
    s.class_create("ipv6-basics", &class, 2, "15m");
    let v = s.wait_ready(&class, 2);
    let hostile = v["labs"][0]["name"].as_str().unwrap().to_owned();
    let other = v["labs"][1]["name"].as_str().unwrap().to_owned();
    // In every node of the hostile lab, the tools checks use flood or hang.
    let out = Command::new("docker")
        .args([
            "ps",
            "--format",
            "{{.Names}}",
            "--filter",
            &format!("label=dev.v6lab.lab={hostile}"),
        ])
        .output()
        .unwrap();
    let containers = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!containers.trim().is_empty());
    for c in containers.lines() {
        let plant = "for t in ip dig curl; do p=$(command -v $t) && printf '#!/bin/sh\\nexec cat /dev/zero\\n' > \"$p\"; done; \
                     for t in ping pidof vtysh; do p=$(command -v $t) && printf '#!/bin/sh\\nexec sleep infinity\\n' > \"$p\"; done; true";
        let o = Command::new("docker")
            .args(["exec", c, "sh", "-c", plant])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    // The other lab is checked on schedule (every 2 s) while the hostile lab's checks hang.
    let t0 = std::time::Instant::now();
    let mut seen = std::collections::BTreeSet::new();
    while t0.elapsed() < Duration::from_secs(14) {
        if let Some((checked, _)) = lab_progress(&s, &other).first() {
            seen.insert(*checked);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    eprintln!(
        "other lab checked {} times in {:?} while the hostile lab's checks hung",
        seen.len(),
        t0.elapsed()
    );
    assert!(seen.len() >= 4, "checked at {seen:?}");
    // The hostile lab's checks fail, saying why.
    let detail = wait_for(
        "the hostile lab's checks to report being stopped",
        Duration::from_secs(60),
        || {
            lab_progress(&s, &hostile)
                .into_iter()
                .map(|(_, d)| d)
                .find(|d| d.contains("did not finish within") || d.contains("output truncated"))
        },
    );
    eprintln!("hostile lab: {detail}");
    let (_, metrics) = s.request("GET", "/metrics", None);
    assert!(
        !metrics.contains("v6lab_execs_stopped_total 0"),
        "{metrics}"
    );
}

#[test]
fn a_lab_deleted_while_being_created_stops_being_created() {
    let s = Serve::start("cancel");
    let class = class_name("can");
    // A node whose start hangs (well within the 60 s start-command deadline).
    let topology = s.dir.join("hangs.yaml");
    std::fs::write(
        &topology,
        "name: hangs\nsegments:\n  lan: ipv6-only\nnodes:\n  h1:\n    role: host\n    \
         interfaces:\n      eth1: lan\n    exec:\n      - sleep 3600\n",
    )
    .unwrap();
    struct Down(Vec<String>);
    impl Drop for Down {
        fn drop(&mut self) {
            for l in &self.0 {
                let _ = Command::new(bin()).args(["down", l]).output();
            }
        }
    }
    let _down = Down(vec![format!("{class}-student-01")]);
    let o = s.cli(&[
        "class",
        "create",
        topology.to_str().unwrap(),
        "--students",
        "1",
        "--lifetime",
        "15m",
        "--name",
        &class,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The lab's node is up and its start command hangs.
    let container = format!("v6lab-{class}-student-01_h1");
    wait_for(
        "the lab's start command to run",
        Duration::from_secs(60),
        || {
            let o = Command::new("docker")
                .args(["top", &container])
                .output()
                .ok()?;
            String::from_utf8_lossy(&o.stdout)
                .contains("sleep 3600")
                .then_some(())
        },
    );
    let t0 = std::time::Instant::now();
    assert!(s.cli(&["class", "delete", &class]).status.success());
    wait_for(
        "the lab being created to be removed",
        Duration::from_secs(30),
        || runtime_labs(&class).is_empty().then_some(()),
    );
    eprintln!(
        "a lab deleted while being created was gone after {:?}",
        t0.elapsed()
    );
    // The creation says why it stopped (logged as its task ends, which may be just after the
    // containers are gone).
    wait_for(
        "the creation to report that it was stopped",
        Duration::from_secs(30),
        || {
            s.log()
                .contains("stopped: the lab was deleted")
                .then_some(())
        },
    );
}

/// A web session of `token` (a student's or the administrator's): its cookies, for pages.
fn web_cookies(s: &Serve, token: &str) -> String {
    let http = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = http
        .post(format!("{}/login", s.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}"))
        .send()
        .unwrap();
    let cookies: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
        .collect();
    assert!(!cookies.is_empty(), "no session cookie: {}", r.status());
    cookies.join("; ")
}

/// A page of the web UI with a session's cookies: (status, body).
fn page(s: &Serve, path: &str, cookies: &str) -> (u16, String) {
    let r = reqwest::blocking::Client::new()
        .get(format!("{}{path}", s.url))
        .header("cookie", cookies)
        .send()
        .unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

/// Per-student values: a class of two students of a topology with `vary: prefix`. Each
/// student's page, the access sheet and the API show that student's prefixes, the labs really
/// have them, and each lab's checks pass after its own solution.
#[test]
fn students_of_a_varied_class_get_their_own_prefixes_and_pass_with_their_own_solution() {
    let mut s = Serve::with("vary", "2s", false);
    let class = class_name("vary");
    let t = std::env::temp_dir().join(format!("v6lab-vary-{}.yaml", std::process::id()));
    let text = std::fs::read_to_string(topology("ipv6-basics")).unwrap();
    std::fs::write(&t, format!("vary: prefix\n{text}")).unwrap();
    s.class_create_file(&t, &class, 2, "15m");
    std::fs::remove_file(&t).unwrap();
    let v = s.wait_ready(&class, 2);
    let mut labs: Vec<(String, String)> = labs_and_tokens(&v);
    labs.sort();
    // student-01 is the first of the roster, student-02 the second.
    let prefix = |n: usize| format!("2001:db8:{n}01::");
    let admin = s.admin_token();
    let sheet = page(
        &s,
        &format!("/classes/{class}/sheet"),
        &web_cookies(&s, &admin),
    );
    assert_eq!(sheet.0, 200);
    for (i, (lab, token)) in labs.iter().enumerate() {
        let (own, other) = (prefix(i + 1), prefix(2 - i));
        // The student's page: their prefix and addresses, never the neighbour's.
        let (code, body) = page(&s, &format!("/labs/{lab}"), &web_cookies(&s, token));
        assert_eq!(code, 200, "{body}");
        assert!(body.contains(&format!("{own}/64")), "{lab}: {body}");
        assert!(body.contains(&format!("{own}1/64")), "{lab}: r1's address");
        assert!(!body.contains(&other), "{lab} shows {other}");
        assert!(
            !body.contains("2001:db8:1::"),
            "{lab} shows the lab as written"
        );
        // The access sheet gives each slip its student's prefix.
        assert!(sheet.1.contains(&format!("{own}/64")), "{}", sheet.1);
        // The API's instructions name the student's addresses.
        let (_, api) = s.request("GET", &format!("/api/labs/{lab}"), Some(token));
        assert!(api.contains(&format!("{own}100/64")), "{api}");
        // The lab has them.
        let o = v6lab_ok(&[
            "exec", lab, "r1", "--", "ip", "-6", "addr", "show", "dev", "eth1",
        ]);
        assert!(o.contains(&format!("{own}1/64")), "{lab}: {o}");
    }

    // Fresh labs fail their checks; each passes after its own solution (read by `v6lab solve`
    // from the lab's copy of its topology, which names the student).
    let progress = || -> Value {
        let p = s.request(
            "GET",
            &format!("/api/classes/{class}/progress"),
            Some(&admin),
        );
        serde_json::from_str(&p.1).unwrap()
    };
    let passed = |p: &Value, lab: &str, ex: &str| -> Option<bool> {
        let st = p["students"].as_array()?.iter().find(|x| x["lab"] == lab)?;
        let e = st["exercises"]
            .as_array()?
            .iter()
            .find(|e| e["exercise"] == ex)?;
        e["passed"].as_bool()
    };
    wait_for("a first round of checks", Duration::from_secs(90), || {
        let p = progress();
        labs.iter()
            .all(|(lab, _)| passed(&p, lab, "static-address") == Some(false))
            .then_some(())
    });
    for (lab, _) in &labs {
        for ex in ["slaac", "static-address"] {
            let o = v6lab(&["solve", lab, ex]);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
    }
    wait_for(
        "every exercise of both labs to pass",
        Duration::from_secs(120),
        || {
            let p = progress();
            labs.iter()
                .all(|(lab, _)| {
                    ["slaac", "static-address"]
                        .iter()
                        .all(|ex| passed(&p, lab, ex) == Some(true))
                })
                .then_some(())
        },
    );
    let o = v6lab_ok(&[
        "exec", &labs[1].0, "h2", "--", "ip", "-6", "addr", "show", "dev", "eth1",
    ]);
    assert!(o.contains(&format!("{}100/64", prefix(2))), "{o}");
}
