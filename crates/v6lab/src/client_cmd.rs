//! Commands that talk to a running controller: `class ...`, `events`, `check --class`.

use crate::Output;
use crate::topology_cmd::read_topology;
use crate::transport::{self, Transport, Trust};
use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use hyper::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::PathBuf;
use std::process::ExitCode;
use v6lab_controller::api_types::{
    CheckRun, Class, ClassSummary, ErrorBody, Event, Expiry, Extend, Lab, NewClass,
};

/// Where the controller is and who we are: flags, then environment, then the config file
/// (`~/.config/v6lab/client.conf`, else `/etc/v6lab/client.conf`: `controller = URL`,
/// `token = TOKEN`, `tls_fingerprint = SHA256` and `ca = FILE` lines), then the local
/// controller's defaults.
#[derive(Args, Clone)]
pub struct Remote {
    /// The controller's URL [default: http://127.0.0.1:7464].
    #[arg(long, global = true, env = "V6LAB_CONTROLLER")]
    pub controller: Option<String>,
    /// Token (the administrator's); default: the state directory's admin.token when readable.
    #[arg(long, global = true, env = "V6LAB_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The SHA-256 fingerprint of an https:// controller's certificate (its self-signed one:
    /// `v6lab serve` prints it at start; the access sheets show it). On loopback, default: the
    /// state directory's tls.crt when readable.
    #[arg(
        long,
        global = true,
        env = "V6LAB_TLS_FINGERPRINT",
        value_name = "SHA256"
    )]
    pub tls_fingerprint: Option<String>,
    /// Certificate authorities (PEM) to trust for an https:// controller, instead of the system's.
    #[arg(long, global = true, env = "V6LAB_CA", value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// The controller's state directory, to find admin.token on the same machine.
    #[arg(
        long,
        global = true,
        env = "V6LAB_STATE_DIR",
        default_value = "/var/lib/v6lab"
    )]
    pub state_dir: PathBuf,
}

#[derive(Subcommand)]
pub enum ClassCommand {
    /// Start one lab per student from a topology.
    Create {
        file: PathBuf,
        /// Number of students (labs student-01, student-02, ...).
        #[arg(long, conflicts_with = "roster", required_unless_present = "roster")]
        students: Option<usize>,
        /// A file with one student name per line (one lab each).
        #[arg(long)]
        roster: Option<PathBuf>,
        /// How long the labs live: `3h`, `90m` (default: the topology's lifetime).
        #[arg(long)]
        lifetime: Option<String>,
        /// Class name (default: the topology's name and a number).
        #[arg(long)]
        name: Option<String>,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// List classes.
    Ls {
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Show a class: its labs, their state, tokens and time left.
    Show {
        name: String,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Give a class more time.
    Extend {
        name: String,
        /// `1h`, `30m`.
        #[arg(long)]
        by: String,
    },
    /// Delete a class now: every lab of it is removed.
    Delete { name: String },
}

struct Client {
    token: String,
    http: Transport,
}

/// `key = value` lines of the first client config file found; `#` starts a comment.
fn config_file() -> Vec<(String, String)> {
    let home = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
    let candidates = home
        .map(|h| h.join("v6lab/client.conf"))
        .into_iter()
        .chain([PathBuf::from("/etc/v6lab/client.conf")]);
    for c in candidates {
        if let Ok(text) = std::fs::read_to_string(&c) {
            return parse_config(&text);
        }
    }
    Vec::new()
}

fn parse_config(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().trim_matches('"').to_owned()))
        .collect()
}

impl Client {
    fn new(r: &Remote) -> Result<Client> {
        let file = config_file();
        let from_file = |key: &str| file.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        let base = r
            .controller
            .clone()
            .or_else(|| from_file("controller"))
            .unwrap_or_else(|| "http://127.0.0.1:7464".into());
        let token = match r.token.clone().or_else(|| from_file("token")) {
            Some(t) => t,
            None => std::fs::read_to_string(r.state_dir.join("admin.token"))
                .map(|t| t.trim().to_owned())
                .map_err(|_| anyhow!("no token: give --token, V6LAB_TOKEN or `token = ...` in ~/.config/v6lab/client.conf (the controller keeps the administrator token in {}/admin.token)", r.state_dir.display()))?,
        };
        let fingerprint = r
            .tls_fingerprint
            .clone()
            .or_else(|| from_file("tls_fingerprint"));
        let ca = r.ca.clone().or_else(|| from_file("ca").map(PathBuf::from));
        let fingerprint = fingerprint.or_else(|| {
            ca.is_none()
                .then(|| transport::local_fingerprint(&base, &r.state_dir))
                .flatten()
        });
        let trust = Trust {
            fingerprint: fingerprint.as_deref(),
            ca: ca.as_deref(),
        };
        Ok(Client {
            token,
            http: Transport::new(&base, trust)?,
        })
    }

    /// Calls the API without a body.
    async fn call<T: DeserializeOwned>(&self, method: Method, path: &str) -> Result<T> {
        self.send(method, path, None::<&()>).await
    }

    /// Calls the API; the answer is read as `T`, a refusal as its message.
    async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T> {
        let body = body.map(serde_json::to_vec).transpose()?;
        let resp = self.http.send(method, path, &self.token, body).await?;
        let status = resp.status();
        let bytes = transport::body(resp).await?;
        if !status.is_success() {
            let msg = serde_json::from_slice::<ErrorBody>(&bytes)
                .map(|e| e.error)
                .unwrap_or_else(|_| "no details".into());
            bail!("the controller refused ({status}): {msg}");
        }
        serde_json::from_slice(&bytes)
            .with_context(|| format!("the controller's answer to {path} was not understood"))
    }
}

/// Prints `v` as JSON (for `--output json`).
fn print_json(v: &impl Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn left(expires: i64) -> String {
    let s = expires - v6lab_controller::controller::now();
    if s <= 0 {
        return "expired".into();
    }
    let (h, m) = (s / 3600, s / 60 % 60);
    if h > 0 {
        format!("{h}h{m:02}m")
    } else {
        format!("{m}m{:02}s", s % 60)
    }
}

pub async fn class(remote: Remote, c: ClassCommand) -> Result<ExitCode> {
    let client = Client::new(&remote)?;
    match c {
        ClassCommand::Create {
            file,
            students,
            roster,
            lifetime,
            name,
            output,
        } => {
            let bytes = read_topology(&file)?;
            // Validate here first: errors with file:line:column, nothing sent.
            if let Err((src, d)) = v6lab_core::plan_source(&file.display().to_string(), &bytes) {
                eprint!("{}", d.render(&src.text));
                return Ok(ExitCode::from(crate::EXIT_INVALID));
            }
            let roster: Option<Vec<String>> = match roster {
                Some(p) => Some(read_roster(&p)?),
                None => None,
            };
            let body = NewClass {
                name,
                topology: String::from_utf8_lossy(&bytes).into_owned(),
                topology_file: Some(file.display().to_string()),
                students,
                roster,
                lifetime,
            };
            let v: Class = client
                .send(Method::POST, "/api/classes", Some(&body))
                .await?;
            if output == Output::Json {
                print_json(&v)?;
            } else {
                println!(
                    "class {} created: {} labs of {}, expiring in {}",
                    v.name,
                    v.labs.len(),
                    v.topology,
                    left(v.expires)
                );
                print_labs(&v.labs);
                println!(
                    "\nLabs come up in the background: `v6lab class show {}`; events: `v6lab events --follow`.",
                    v.name
                );
            }
        }
        ClassCommand::Ls { output } => {
            let v: Vec<ClassSummary> = client.call(Method::GET, "/api/classes").await?;
            if output == Output::Json {
                print_json(&v)?;
            } else {
                let mut rows = vec![vec![
                    "CLASS".to_string(),
                    "TOPOLOGY".into(),
                    "LABS".into(),
                    "READY".into(),
                    "FAILED".into(),
                    "EXPIRES IN".into(),
                ]];
                for c in v {
                    rows.push(vec![
                        c.name,
                        c.topology,
                        c.labs.to_string(),
                        c.ready.to_string(),
                        c.failed.to_string(),
                        left(c.expires),
                    ]);
                }
                print!("{}", v6lab_core::report::columns(&rows));
            }
        }
        ClassCommand::Show { name, output } => {
            let v: Class = client
                .call(Method::GET, &format!("/api/classes/{name}"))
                .await?;
            if output == Output::Json {
                print_json(&v)?;
            } else {
                println!(
                    "class {} ({}), expires in {}",
                    name,
                    v.topology,
                    left(v.expires)
                );
                print_labs(&v.labs);
            }
        }
        ClassCommand::Extend { name, by } => {
            let v: Expiry = client
                .send(
                    Method::POST,
                    &format!("/api/classes/{name}/extend"),
                    Some(&Extend { by }),
                )
                .await?;
            println!("class {name} now expires in {}", left(v.expires));
        }
        ClassCommand::Delete { name } => {
            let _: v6lab_controller::api_types::Deleted = client
                .call(Method::DELETE, &format!("/api/classes/{name}"))
                .await?;
            println!("class {name} deleted; its labs are being removed");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_labs(labs: &[Lab]) {
    let mut rows = vec![vec![
        "STUDENT".to_string(),
        "LAB".into(),
        "STATE".into(),
        "TOKEN".into(),
    ]];
    for l in labs {
        let mut state = l.state.as_str().to_owned();
        if let Some(e) = l.last_error.as_deref().filter(|_| state == "failed") {
            state = format!("failed: {}", e.lines().next().unwrap_or(""));
        }
        rows.push(vec![
            l.student.clone().unwrap_or_else(|| "-".into()),
            l.name.clone(),
            state,
            l.token.clone().unwrap_or_default(),
        ]);
    }
    print!("{}", v6lab_core::report::columns(&rows));
}

pub async fn events(remote: Remote, follow: bool, output: Output) -> Result<ExitCode> {
    let client = Client::new(&remote)?;
    let show = |e: &Event| {
        if output == Output::Json {
            println!("{}", serde_json::to_string(e).unwrap_or_default());
        } else {
            let ts = e.ts;
            let (h, m, s) = (ts / 3600 % 24, ts / 60 % 60, ts % 60);
            println!("{h:02}:{m:02}:{s:02}Z  {:<16} {}", e.kind, e.message);
        }
    };
    if !follow {
        let v: Vec<Event> = client.call(Method::GET, "/api/events").await?;
        for e in &v {
            show(e);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut resp = client
        .http
        .send(Method::GET, "/api/events?follow=true", &client.token, None)
        .await?;
    if !resp.status().is_success() {
        bail!("the controller refused ({})", resp.status());
    }
    let mut buf = String::new();
    while let Some(chunk) = transport::chunk(&mut resp).await? {
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(i) = buf.find("\n\n") {
            let msg: String = buf.drain(..i + 2).collect();
            for line in msg.lines() {
                if let Some(d) = line.strip_prefix("data:")
                    && let Ok(e) = serde_json::from_str::<Event>(d.trim())
                {
                    show(&e);
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `v6lab check --class C`: every student's lab checked now; students x exercises.
pub async fn check_class(remote: Remote, class: String, output: Output) -> Result<ExitCode> {
    let client = Client::new(&remote)?;
    let v: Class = client
        .call(Method::GET, &format!("/api/classes/{class}"))
        .await?;
    let labs: Vec<(String, String)> = v
        .labs
        .into_iter()
        .map(|l| (l.name, l.student.unwrap_or_else(|| "-".into())))
        .collect();
    let paths: Vec<String> = labs
        .iter()
        .map(|(lab, _)| format!("/api/labs/{lab}/checks"))
        .collect();
    let results: Vec<Result<CheckRun>> =
        futures::future::join_all(paths.iter().map(|p| client.call(Method::POST, p))).await;
    if output == Output::Json {
        /// A lab's line of `check --class --output json`.
        #[derive(Serialize)]
        struct Line<'a> {
            lab: &'a str,
            student: &'a str,
            result: Option<&'a CheckRun>,
            error: Option<String>,
        }
        let all: Vec<Line> = labs
            .iter()
            .zip(&results)
            .map(|((lab, s), r)| Line {
                lab,
                student: s,
                result: r.as_ref().ok(),
                error: r.as_ref().err().map(|e| e.to_string()),
            })
            .collect();
        print_json(&all)?;
    }
    let mut exercises: Vec<String> = Vec::new();
    for r in results.iter().flatten() {
        for e in &r.exercises {
            if !exercises.contains(&e.id) {
                exercises.push(e.id.clone());
            }
        }
    }
    let mut all_pass = true;
    let mut rows = vec![
        std::iter::once("STUDENT".to_string())
            .chain(exercises.iter().cloned())
            .collect::<Vec<_>>(),
    ];
    for ((_, student), r) in labs.iter().zip(&results) {
        let mut row = vec![student.clone()];
        match r {
            Ok(r) => {
                for x in &exercises {
                    let pass = r.exercises.iter().find(|e| e.id == *x).map(|e| e.passed);
                    all_pass &= pass == Some(true);
                    row.push(match pass {
                        Some(true) => "pass".into(),
                        Some(false) => "-".into(),
                        None => "?".into(),
                    });
                }
            }
            Err(e) => {
                all_pass = false;
                row.push(format!("not checked: {e}"));
            }
        }
        rows.push(row);
    }
    if output == Output::Text {
        print!("{}", v6lab_core::report::columns(&rows));
    }
    Ok(if all_pass {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// A roster file: one student name a line (blank lines and `#` comments skipped).
pub fn read_roster(p: &std::path::Path) -> Result<Vec<String>> {
    Ok(std::fs::read_to_string(p)
        .with_context(|| format!("reading {}", p.display()))?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn config_lines() {
        let c = super::parse_config(
            "# v6lab client\ncontroller = http://lab.example:7464\ntoken=\"v6a_x\" # admin\n\nnonsense\n",
        );
        assert_eq!(
            c,
            vec![
                ("controller".into(), "http://lab.example:7464".into()),
                ("token".into(), "v6a_x".into())
            ]
        );
    }
}
