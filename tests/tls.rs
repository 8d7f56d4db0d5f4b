//! HTTPS built into `v6lab serve`, on the real engine: the self-signed certificate, reached only
//! with its fingerprint pinned (by the tests and by the CLI), reused across restarts, shown on the
//! access sheet; `Secure` cookies; a terminal over wss; plain HTTP refused off loopback.
//!
//! The controller listens on every address (`[::]`) with a random high port; the tests connect
//! only through loopback.

mod common;

use common::serve::{Serve, free_port, https_exchange, status_of, tls_connect};
use common::*;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn https_with_a_pinned_self_signed_certificate() {
    let test = format!("tls{}", std::process::id() % 100_000);
    let mut s = Serve::https(&test);
    let fp = s.fingerprint.clone().unwrap();
    let port: u16 = s.url.rsplit(':').next().unwrap().parse().unwrap();
    println!("certificate fingerprint: {fp}");

    // Printed at start; the key is the owner's only.
    assert!(
        s.log().contains(&fp),
        "fingerprint not in the log:\n{}",
        s.log()
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let key = std::fs::metadata(s.dir.join(v6lab_controller::tls::KEY_FILE)).unwrap();
        assert_eq!(key.permissions().mode() & 0o777, 0o600);
    }

    // Another fingerprint is refused at the handshake, saying which certificate was presented.
    let wrong = v6lab_controller::tls::fingerprint(b"another certificate");
    let Err(e) = tls_connect(port, &wrong) else {
        panic!("a wrong fingerprint must be refused");
    };
    assert!(e.to_string().contains(&fp), "{e}");

    // Plain HTTP on the HTTPS port is sent to https://, never served.
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert_eq!(status_of(answer.as_bytes()), 301, "{answer}");
    assert!(
        answer.contains("Location: https://localhost/healthz\r\n"),
        "{answer}"
    );

    // The CLI: with the fingerprint (the harness sets V6LAB_TLS_FINGERPRINT), or on loopback
    // with the state directory's certificate, it works; with another fingerprint, or none (the
    // system's authorities do not know a self-signed certificate), it refuses and says what to do.
    let o = s.cli(&["class", "ls"]);
    assert!(o.status.success(), "class ls over HTTPS: {}", text(&o));
    let o = s.cli(&["class", "ls", "--tls-fingerprint", &wrong]);
    assert!(!o.status.success());
    assert!(text(&o).contains(&fp), "{}", text(&o));
    let without_fingerprint = |state_dir: &std::path::Path| {
        Command::new(bin())
            .args(["class", "ls", "--token", &s.admin_token()])
            .env("V6LAB_CONTROLLER", &s.url)
            .env("V6LAB_STATE_DIR", state_dir)
            .env_remove("V6LAB_TLS_FINGERPRINT")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let o = without_fingerprint(&s.dir);
    assert!(
        o.status.success(),
        "class ls with the local certificate: {}",
        text(&o)
    );
    let o = without_fingerprint(std::path::Path::new("/nonexistent"));
    assert!(!o.status.success());
    assert!(text(&o).contains("--tls-fingerprint"), "{}", text(&o));
    let o = s.cli(&[
        "class",
        "ls",
        "--controller",
        &s.url.replace("https:", "http:"),
    ]);
    assert!(!o.status.success(), "a pinned fingerprint over plain HTTP");
    assert!(text(&o).contains("https://"), "{}", text(&o));

    // The same certificate after a restart.
    s.kill9();
    s.spawn();
    assert_eq!(s.fingerprint.as_deref(), Some(fp.as_str()));

    // Signing in over HTTPS sets a Secure cookie.
    let admin = s.admin_token();
    let form = format!("token={admin}");
    let r = https_exchange(
        port,
        &fp,
        &format!(
            "POST /login HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
            form.len()
        ),
    )
    .unwrap();
    let head = String::from_utf8_lossy(&r).into_owned();
    let cookie_line = head
        .lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie: v6lab_admin=")
        })
        .unwrap_or_else(|| panic!("no admin cookie:\n{head}"));
    assert!(cookie_line.contains("; Secure"), "{cookie_line}");
    assert!(cookie_line.contains("HttpOnly"), "{cookie_line}");
    let cookie = cookie_line["set-cookie: ".len()..]
        .split(';')
        .next()
        .unwrap()
        .to_owned();

    // A class: its access sheet shows the fingerprint and an https:// address.
    let class = format!("{test}-c");
    s.class_create("ipv6-basics", &class, 1, "15m");
    let r = https_exchange(
        port,
        &fp,
        &format!(
            "GET /classes/{class}/sheet HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\nCookie: {cookie}\r\n\r\n"
        ),
    )
    .unwrap();
    let sheet = String::from_utf8_lossy(&r);
    assert_eq!(status_of(&r), 200, "{sheet}");
    assert!(sheet.contains(&fp), "the sheet has no fingerprint");
    // Next to the SSH host key's, as the gateway printed it.
    let log = s.log();
    let host_key = log
        .split("(host key ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .unwrap_or_else(|| panic!("no SSH host key in the log:\n{log}"));
    assert!(host_key.starts_with("SHA256:"), "{host_key}");
    assert!(sheet.contains(host_key), "the sheet has no SSH host key");
    assert!(
        sheet.contains(&format!("https://localhost:{port}/s/")),
        "{sheet}"
    );

    // A terminal over wss: the upgrade, then a command and its output.
    let v = s.wait_ready(&class, 1);
    let lab = v["labs"][0]["name"].as_str().unwrap().to_owned();
    let mut ws = tls_connect(port, &fp).unwrap();
    write!(
        ws,
        "GET /labs/{lab}/nodes/h1/terminal HTTP/1.1\r\nHost: localhost:{port}\r\nAuthorization: Bearer {admin}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    ws.flush().unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        ws.read_exact(&mut b).unwrap();
        head.push(b[0]);
    }
    assert_eq!(status_of(&head), 101, "{}", String::from_utf8_lossy(&head));
    ws.write_all(&client_frame(b"echo tls-$((6*7))\n")).unwrap();
    ws.flush().unwrap();
    let mut seen = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !seen.contains("tls-42") {
        assert!(
            std::time::Instant::now() < deadline,
            "no output over wss: {seen:?}"
        );
        seen.push_str(&String::from_utf8_lossy(&server_frame(&mut ws)));
    }
}

/// A masked binary WebSocket frame (client to server), payload under 126 bytes.
fn client_frame(payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mask = [0x37u8, 0xfa, 0x21, 0x3d];
    let mut f = vec![0x82, 0x80 | payload.len() as u8];
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// The payload of the next frame from the server (never masked).
fn server_frame(r: &mut impl Read) -> Vec<u8> {
    let mut h = [0u8; 2];
    r.read_exact(&mut h).unwrap();
    let len = match h[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b).unwrap();
            u16::from_be_bytes(b) as usize
        }
        127 => {
            let mut b = [0u8; 8];
            r.read_exact(&mut b).unwrap();
            u64::from_be_bytes(b) as usize
        }
        n => n as usize,
    };
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).unwrap();
    payload
}

/// Plain HTTP off loopback only by name: without TLS and without `--insecure-http` the
/// controller refuses to start and names the flags; with `--insecure-http` it serves HTTP.
#[test]
fn plain_http_only_on_loopback_or_by_name() {
    let dir = std::env::temp_dir().join(format!("v6lab-tls-plain-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let serve = |extra: &[&str]| {
        let mut c = Command::new(bin());
        c.args(["serve", "--ssh-listen", "off", "--state-dir"])
            .arg(&dir)
            .args(extra)
            .env_remove("V6LAB_TLS")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    };
    for listen in [format!("0.0.0.0:{port}"), format!("[::]:{port}")] {
        let o = serve(&["--listen", &listen]).output().unwrap();
        let t = text(&o);
        assert!(!o.status.success(), "started without TLS on {listen}: {t}");
        for flag in ["--tls", "--tls-cert", "--insecure-http", "not a loopback"] {
            assert!(t.contains(flag), "{listen}: no {flag:?} in: {t}");
        }
    }
    let o = serve(&["--listen", &format!("[::]:{port}"), "--tls-cert", "x.pem"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(text(&o).contains("--tls-key"), "{}", text(&o));

    // Asked for by name: plain HTTP on every address.
    let mut child = serve(&["--listen", &format!("[::]:{port}"), "--insecure-http"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let http = reqwest::blocking::Client::new();
    let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for("plain HTTP on [::]", Duration::from_secs(120), || {
            http.get(format!("http://127.0.0.1:{port}/healthz"))
                .send()
                .ok()
                .filter(|r| r.status().is_success())
        })
    }));
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(p) = ok {
        std::panic::resume_unwind(p);
    }
}

/// `--tls-cert`/`--tls-key`: that certificate is served (its fingerprint printed), and nothing is
/// generated in the state directory.
#[test]
fn given_certificate_is_served() {
    let base = std::env::temp_dir().join(format!("v6lab-tls-given-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let (certs, state) = (base.join("certs"), base.join("state"));
    std::fs::create_dir_all(&certs).unwrap();
    let (id, _) =
        v6lab_controller::tls::self_signed(&certs, &["lab.example.org".to_owned()]).unwrap();
    let port = free_port();
    let log = base.join("serve.log");
    let mut child = Command::new(bin())
        .args([
            "serve",
            "--ssh-listen",
            "off",
            "--listen",
            &format!("[::]:{port}"),
        ])
        .arg("--tls-cert")
        .arg(certs.join(v6lab_controller::tls::CERT_FILE))
        .arg("--tls-key")
        .arg(certs.join(v6lab_controller::tls::KEY_FILE))
        .arg("--state-dir")
        .arg(&state)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let ok = std::panic::catch_unwind(|| {
        wait_for("/healthz over HTTPS", Duration::from_secs(120), || {
            let r = https_exchange(
                port,
                &id.fingerprint,
                "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            )
            .ok()?;
            (status_of(&r) == 200).then_some(())
        });
        let log = std::fs::read_to_string(&log).unwrap();
        assert!(log.contains(&id.fingerprint), "{log}");
        assert!(!state.join(v6lab_controller::tls::CERT_FILE).exists());
    });
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&base);
    if let Err(p) = ok {
        std::panic::resume_unwind(p);
    }
}
