//! A real `v6lab serve` for tests: its own loopback ports and state directory, the CLI pointed
//! at it, and every lab of the test's classes removed at the end (also when the test fails).
//! [`Serve::https`] serves HTTPS with its self-signed certificate, on every address (`[::]`),
//! reached only through loopback with the certificate's fingerprint pinned.

use super::*;
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Serve {
    child: Option<Child>,
    pub dir: PathBuf,
    pub url: String,
    port: u16,
    /// The SSH gateway's port (`None`: no gateway).
    pub ssh_port: Option<u16>,
    check_interval: String,
    /// Serves HTTPS with its self-signed certificate (listening on `[::]`).
    tls: bool,
    /// That certificate's SHA-256 fingerprint, known once it answers.
    pub fingerprint: Option<String>,
    /// Classes this test made (their labs are removed at the end).
    classes: Vec<String>,
    /// Global options naming the runtime (`--runtime kubernetes --namespace NS`), for the
    /// controller and the clean-up.
    runtime: Vec<String>,
}

impl Serve {
    /// A controller that never checks exercises by itself, without SSH gateway.
    pub fn start(test: &str) -> Serve {
        Self::with(test, "0s", false)
    }

    /// `check_interval`: how often it checks class labs' exercises; `ssh`: with a gateway.
    pub fn with(test: &str, check_interval: &str, ssh: bool) -> Serve {
        Self::new(test, check_interval, ssh, false)
    }

    /// Over HTTPS (`--tls`, on `[::]`), with an SSH gateway (on loopback).
    pub fn https(test: &str) -> Serve {
        Self::new(test, "0s", true, true)
    }

    /// A controller on another runtime (`--runtime kubernetes --namespace NS`), with an SSH
    /// gateway, checking exercises by itself every `check_interval`.
    pub fn on_runtime(test: &str, runtime: &[&str], check_interval: &str) -> Serve {
        Self::build(test, check_interval, true, false, runtime)
    }

    fn new(test: &str, check_interval: &str, ssh: bool, tls: bool) -> Serve {
        Self::build(test, check_interval, ssh, tls, &[])
    }

    fn build(test: &str, check_interval: &str, ssh: bool, tls: bool, runtime: &[&str]) -> Serve {
        let dir = std::env::temp_dir().join(format!("v6lab-ctl-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let mut s = Serve {
            child: None,
            dir,
            url: format!("{}://127.0.0.1:{port}", if tls { "https" } else { "http" }),
            port,
            ssh_port: ssh.then(free_port),
            check_interval: check_interval.to_owned(),
            tls,
            fingerprint: None,
            classes: Vec::new(),
            runtime: runtime.iter().map(|a| a.to_string()).collect(),
        };
        s.spawn();
        s
    }

    /// Starts (or restarts) the controller and waits until it answers.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("serve.log"))
            .unwrap();
        let ssh = match self.ssh_port {
            Some(p) => format!("127.0.0.1:{p}"),
            None => "off".into(),
        };
        let (listen, tls) = match self.tls {
            true => (format!("[::]:{}", self.port), Some("--tls")),
            false => (format!("127.0.0.1:{}", self.port), None),
        };
        let child = Command::new(bin())
            .args(&self.runtime)
            .args(["serve", "--listen", &listen, "--ssh-listen", &ssh])
            .args(tls)
            .args([
                "--state-dir",
                self.dir.to_str().unwrap(),
                "--warn-before",
                "10s",
                "--check-interval",
                &self.check_interval,
            ])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        if self.tls {
            let cert = self.dir.join(v6lab_controller::tls::CERT_FILE);
            let fp = wait_for(
                "the self-signed certificate",
                Duration::from_secs(120),
                || {
                    let pem = std::fs::read(&cert).ok()?;
                    let der = rustls::pki_types::pem::PemObject::from_pem_slice(&pem).ok()?;
                    let der: rustls::pki_types::CertificateDer = der;
                    Some(v6lab_controller::tls::fingerprint(&der))
                },
            );
            wait_for(
                "the controller to answer /healthz over HTTPS",
                Duration::from_secs(120),
                || {
                    let r = https_exchange(
                        self.port,
                        &fp,
                        "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                    )
                    .ok()?;
                    (status_of(&r) == 200).then_some(())
                },
            );
            self.fingerprint = Some(fp);
        } else {
            let http = reqwest::blocking::Client::new();
            let url = format!("{}/healthz", self.url);
            wait_for(
                "the controller to answer /healthz",
                Duration::from_secs(120),
                || {
                    http.get(&url)
                        .send()
                        .ok()
                        .filter(|r| r.status().is_success())
                },
            );
        }
        if let Some(p) = self.ssh_port {
            wait_for("the SSH gateway to listen", Duration::from_secs(10), || {
                std::net::TcpStream::connect(("127.0.0.1", p)).ok()
            });
        }
    }

    /// The controller's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// SIGKILL: no shutdown handler runs.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.dir.join("admin.token"))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// The CLI, talking to this controller.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(bin())
            .args(args)
            .env("V6LAB_CONTROLLER", &self.url)
            .envs(
                self.fingerprint
                    .as_ref()
                    .map(|f| ("V6LAB_TLS_FINGERPRINT", f)),
            )
            .env("V6LAB_STATE_DIR", &self.dir)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    pub fn class_create(
        &mut self,
        topology_name: &str,
        class: &str,
        students: usize,
        lifetime: &str,
    ) -> Value {
        self.class_create_file(&topology(topology_name), class, students, lifetime)
    }

    /// `class create` of a topology file anywhere (the class's labs are removed at the end).
    pub fn class_create_file(
        &mut self,
        t: &std::path::Path,
        class: &str,
        students: usize,
        lifetime: &str,
    ) -> Value {
        let n = students.to_string();
        self.classes.push(class.to_owned());
        let o = self.cli(&[
            "class",
            "create",
            t.to_str().unwrap(),
            "--students",
            &n,
            "--lifetime",
            lifetime,
            "--name",
            class,
            "--output",
            "json",
        ]);
        assert!(
            o.status.success(),
            "class create: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_slice(&o.stdout).unwrap()
    }

    pub fn class_show(&self, class: &str) -> Option<Value> {
        let o = self.cli(&["class", "show", class, "--output", "json"]);
        o.status
            .success()
            .then(|| serde_json::from_slice(&o.stdout).unwrap())
    }

    pub fn wait_ready(&self, class: &str, n: usize) -> Value {
        wait_for(
            &format!("{n} ready labs in class {class}"),
            Duration::from_secs(240),
            || {
                let v = self.class_show(class)?;
                let ready = v["labs"]
                    .as_array()?
                    .iter()
                    .filter(|l| l["state"] == "ready")
                    .count();
                (ready == n).then_some(v)
            },
        )
    }

    /// An HTTP request to the API: (status, body).
    pub fn request(&self, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
        if let Some(fp) = &self.fingerprint {
            let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n"));
            let body = if method == "POST" { "{}" } else { "" };
            let r = https_exchange(self.port, fp, &format!(
                "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                auth.unwrap_or_default(), body.len()
            )).unwrap();
            let text = String::from_utf8_lossy(&r);
            let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
            return (status_of(&r), body.to_owned());
        }
        let http = reqwest::blocking::Client::new();
        let mut r = http.request(method.parse().unwrap(), format!("{}{path}", self.url));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if method == "POST" {
            r = r.header("content-type", "application/json").body("{}");
        }
        let resp = r.send().unwrap();
        (resp.status().as_u16(), resp.text().unwrap())
    }

    /// The controller's log (stdout and stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("serve.log")).unwrap_or_default()
    }
}

/// A TLS connection to `127.0.0.1:PORT` that trusts only the certificate with this fingerprint.
pub fn tls_connect(
    port: u16,
    fingerprint: &str,
) -> std::io::Result<rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>> {
    use v6lab_controller::tls;
    let pin = tls::parse_fingerprint(fingerprint).map_err(std::io::Error::other)?;
    let config = tls::pinned_client(pin).map_err(std::io::Error::other)?;
    let conn =
        rustls::ClientConnection::new(std::sync::Arc::new(config), "127.0.0.1".try_into().unwrap())
            .map_err(std::io::Error::other)?;
    let tcp = std::net::TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    // The handshake now, so that a refused certificate is this call's error.
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(s)
}

/// One raw HTTP/1.1 request (with `Connection: close`) over [`tls_connect`]; the whole answer.
pub fn https_exchange(port: u16, fingerprint: &str, request: &str) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Write};
    let mut s = tls_connect(port, fingerprint)?;
    s.write_all(request.as_bytes())?;
    s.flush()?;
    let mut out = Vec::new();
    match s.read_to_end(&mut out) {
        Ok(_) => Ok(out),
        // A peer that closes without TLS close_notify: what came before is the answer.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => Ok(out),
        Err(e) => Err(e),
    }
}

/// The status code of a raw HTTP/1.1 answer (0 if there is none).
pub fn status_of(answer: &[u8]) -> u16 {
    String::from_utf8_lossy(answer)
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.kill9();
        let o = Command::new(bin())
            .args(&self.runtime)
            .args(["ls", "--output", "json"])
            .output()
            .unwrap();
        let down = |lab: &str| {
            Command::new(bin())
                .args(&self.runtime)
                .args(["down", lab, "--quiet"])
                .output()
        };
        let labs: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
        for l in labs.as_array().into_iter().flatten() {
            let name = l["lab"].as_str().unwrap_or("");
            if self
                .classes
                .iter()
                .any(|c| name.starts_with(&format!("{c}-")))
            {
                let _ = down(name);
            }
        }
        // Links a cut-short removal may have left, by name.
        for c in &self.classes {
            for i in 1..=8 {
                let _ = down(&format!("{c}-student-{i:02}"));
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
