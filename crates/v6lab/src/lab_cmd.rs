//! Commands that touch a container engine: up, down, ls, inspect, exec, shell, images.

use crate::Output;
use crate::topology_cmd::load_plan;
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::HashMap;
use std::future::Future;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use v6lab_core::plan::{Assign4, Assign6, Plan};
use v6lab_runtime::from_plan::{Apply, lab_spec};
use v6lab_runtime::runtime::{self, Event, EventKind, ExecLimits, Observer, Recipe, Runtime};

#[derive(Args)]
pub struct UpArgs {
    pub file: PathBuf,
    /// Lab name (default: the topology's name).
    #[arg(long)]
    pub name: Option<String>,
    /// Lifetime instead of the topology's: `90m`, `3h`.
    #[arg(long)]
    pub lifetime: Option<String>,
    /// Apply every part of the plan, also those left to students (a trainer's reference lab).
    #[arg(long)]
    pub complete: bool,
    /// Print nothing but errors.
    #[arg(long, short)]
    pub quiet: bool,
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
    #[command(flatten)]
    pub policy: crate::topology_cmd::PolicyArgs,
}

#[derive(Args)]
pub struct DownArgs {
    /// Lab to remove.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub lab: Option<String>,
    /// Remove every lab and every object v6lab made on this host.
    #[arg(long)]
    pub all: bool,
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Subcommand)]
pub enum ImagesCommand {
    /// Build the lab image from Debian packages (skipped when up to date).
    Build {
        /// Rebuild even when an image of the same recipe exists.
        #[arg(long)]
        force: bool,
    },
    /// List lab images.
    Ls,
}

pub fn run(f: impl Future<Output = Result<ExitCode>>) -> Result<ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(f)
}

use crate::runtime_choice::connect;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn human(secs: u64) -> String {
    let (h, m) = (secs / 3600, secs / 60 % 60);
    match (h, m) {
        (0, m) => format!("{m}m"),
        (h, 0) => format!("{h}h"),
        (h, m) => format!("{h}h{m}m"),
    }
}

/// Progress of `up`: bars on a terminal, plain lines otherwise, nothing with --quiet.
enum Progress {
    Quiet,
    Lines,
    Bars {
        multi: MultiProgress,
        bars: Mutex<HashMap<String, ProgressBar>>,
        style: ProgressStyle,
    },
}

impl Progress {
    fn new(quiet: bool, nodes: &[String]) -> Progress {
        if quiet {
            return Progress::Quiet;
        }
        if !std::io::stderr().is_terminal() {
            return Progress::Lines;
        }
        let multi = MultiProgress::new();
        let style = ProgressStyle::with_template("{spinner:.green} {prefix:<12.bold} {wide_msg}")
            .expect("template");
        let mut bars = HashMap::new();
        for n in nodes {
            let b = multi.add(ProgressBar::new_spinner());
            b.set_style(style.clone());
            b.set_prefix(n.clone());
            b.set_message("waiting");
            b.enable_steady_tick(Duration::from_millis(100));
            bars.insert(n.clone(), b);
        }
        Progress::Bars {
            multi,
            bars: Mutex::new(bars),
            style,
        }
    }

    fn line(&self, who: &str, msg: &str, elapsed: Duration) {
        match self {
            Progress::Quiet => {}
            Progress::Lines => eprintln!("[{:>6.1}s] {who}: {msg}", elapsed.as_secs_f32()),
            Progress::Bars { multi, bars, style } => {
                let mut bars = bars.lock().expect("bars");
                let b = bars.entry(who.to_owned()).or_insert_with(|| {
                    let b = multi.add(ProgressBar::new_spinner());
                    b.set_style(style.clone());
                    b.set_prefix(who.to_owned());
                    b
                });
                b.set_message(format!("{msg} ({:.1}s)", elapsed.as_secs_f32()));
                if msg == "ready" {
                    b.finish();
                }
            }
        }
    }

    fn finish(&self) {
        if let Progress::Bars { bars, .. } = self {
            for b in bars.lock().expect("bars").values() {
                b.finish();
            }
        }
    }
}

impl Observer for Progress {
    fn event(&self, e: &Event) {
        let (who, msg) = match &e.kind {
            EventKind::SegmentCreated { segment } => {
                (format!("segment {segment}"), "bridge created".to_string())
            }
            EventKind::NodeCreated { node } => (node.clone(), "container created".into()),
            EventKind::NodeStarted { node } => (node.clone(), "started".into()),
            EventKind::NodeWired { node } => (node.clone(), "interfaces wired".into()),
            EventKind::NodeConfigured { node } => (node.clone(), "configured".into()),
            EventKind::NodeWaiting { node, probe } => {
                (node.clone(), format!("waiting for {probe}"))
            }
            EventKind::NodeReady { node } => (node.clone(), "ready".into()),
        };
        if matches!(self, Progress::Bars { .. }) && who.starts_with("segment ") {
            return;
        }
        self.line(&who, &msg, e.elapsed);
    }
}

/// Builds the lab image when it is missing; returns its tag.
async fn ensure_image(rt: &dyn Runtime, quiet: bool) -> Result<String> {
    let recipe = Recipe::locate()?;
    let say = move |s: &str| {
        if !quiet {
            eprintln!("image: {s}");
        }
    };
    let e = rt.ensure_image(&recipe, false, &say).await?;
    if e.built && !quiet {
        eprintln!("image: {} built in {:.0}s", e.tag, e.elapsed.as_secs_f32());
    }
    Ok(e.tag)
}

pub async fn up(a: UpArgs) -> Result<ExitCode> {
    // Validation first: an invalid topology changes nothing on the host.
    a.policy.install()?;
    let (src, plan) = match load_plan(&a.file)? {
        Ok(x) => x,
        Err((src, d)) => {
            eprint!("{}", d.render(&src.text));
            return Ok(ExitCode::from(crate::EXIT_INVALID));
        }
    };
    let lab = a.name.clone().unwrap_or_else(|| plan.name.clone());
    if let Some(p) = v6lab_core::values::dns_label_problem(&lab, 40) {
        bail!(
            "the lab name `{lab}` is not DNS-safe: {p}; use e.g. `{}`",
            v6lab_core::values::dns_safe(&lab)
        );
    }
    let lifetime = match &a.lifetime {
        Some(l) => v6lab_core::values::parse_duration(l)
            .map_err(|e| anyhow::anyhow!("--lifetime {l}: {e} (write e.g. 90m or 3h)"))?,
        None => plan.lifetime_secs,
    };
    let rt = connect().await?;
    let quiet = a.quiet || a.output == Output::Json;
    let image = ensure_image(&*rt, quiet).await?;
    let expires = now() + lifetime;
    let apply = if a.complete {
        Apply::Complete
    } else {
        Apply::Exercises
    };
    let spec = lab_spec(&plan, &src.text, &lab, &image, Some(expires), apply);
    let progress = Progress::new(
        quiet,
        &plan
            .nodes
            .iter()
            .map(|n| n.name.clone())
            .collect::<Vec<_>>(),
    );
    let started = std::time::Instant::now();
    let cancel = runtime::CancellationToken::new();
    let result = tokio::select! {
        r = rt.up(&spec, &progress, &cancel) => r.map_err(anyhow::Error::from),
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    progress.finish();
    if let Err(e) = result {
        // Leave nothing half-made behind, unless the lab existed before this command.
        let exists = matches!(
            e.downcast_ref::<runtime::Error>(),
            Some(runtime::Error::LabExists { .. })
        );
        if !exists {
            if !quiet {
                eprintln!("{lab}: bringing the lab up failed; removing what was created");
            }
            if let Err(d) = rt.down(&lab).await {
                eprintln!("warning: cleaning up {lab} failed too: {d:#}; run `v6lab down {lab}`");
            }
        }
        return Err(e.context(format!("lab {lab} did not come up")));
    }
    let elapsed = started.elapsed();
    if a.output == Output::Json {
        println!(
            "{}",
            serde_json::json!({"lab": lab, "topology": plan.name, "ready_secs": elapsed.as_secs_f64(), "expires_at": expires,
                "nodes": plan.nodes.iter().map(|n| serde_json::json!({"node": n.name, "shell": format!("v6lab shell {lab} {}", n.name)})).collect::<Vec<_>>()})
        );
    } else if !a.quiet {
        print!("{}", ready_text(&plan, &lab, elapsed, lifetime, a.complete));
    }
    Ok(ExitCode::SUCCESS)
}

/// What a trainer reads when a lab is ready: how to reach each node.
fn ready_text(plan: &Plan, lab: &str, elapsed: Duration, lifetime: u64, complete: bool) -> String {
    let mut out = format!(
        "\nlab {lab} is ready ({:.1}s){}; it expires in {}.\n\
         The lifetime is enforced only while a controller runs (`v6lab serve`); otherwise remove it with `v6lab down {lab}`.\n\nShells:\n",
        elapsed.as_secs_f32(),
        if complete {
            ", every exercise solved"
        } else {
            ""
        },
        human(lifetime)
    );
    let mut rows = Vec::new();
    for n in &plan.nodes {
        let addrs: Vec<String> = n
            .interfaces
            .iter()
            .flat_map(|i| {
                let v6 = match &i.ipv6 {
                    Assign6::Static { address } => Some(address.addr().to_string()),
                    Assign6::Slaac { expected, .. } => Some(format!("{expected} (slaac)")),
                    Assign6::Dhcpv6 { prefix } => Some(format!("dhcpv6 in {prefix}")),
                    _ => None,
                };
                let v4 = match &i.ipv4 {
                    Assign4::Static { address } => Some(address.addr().to_string()),
                    Assign4::Dhcp { prefix } => Some(format!("dhcp in {prefix}")),
                    _ => None,
                };
                v6.into_iter().chain(v4)
            })
            .collect();
        rows.push(vec![
            format!("  v6lab shell {lab} {}", n.name),
            format!("# {}", n.role.as_str()),
            addrs.join(", "),
        ]);
    }
    out.push_str(&v6lab_core::report::columns(&rows));
    if !plan.exercises.is_empty() && !complete {
        out.push_str("\nExercises:\n");
        for e in &plan.exercises {
            out.push_str(&format!("  {:<16} {}\n", e.id, e.title));
        }
    }
    out
}

pub async fn down(a: DownArgs) -> Result<ExitCode> {
    let rt = connect().await?;
    let (what, removed) = if a.all {
        ("every lab".to_string(), rt.down_all().await?)
    } else {
        let lab = a.lab.expect("clap requires a lab");
        (format!("lab {lab}"), rt.down(&lab).await?)
    };
    if !a.quiet {
        if removed.is_empty() {
            println!("{what}: nothing to remove");
        } else {
            println!(
                "{what}: removed {} containers, {} bridges, {} veths",
                removed.containers, removed.bridges, removed.veths
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn ls(output: Output) -> Result<ExitCode> {
    let rt = connect().await?;
    let labs = rt.list().await?;
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&labs)?);
        return Ok(ExitCode::SUCCESS);
    }
    if labs.is_empty() {
        println!("no labs");
        return Ok(ExitCode::SUCCESS);
    }
    let t = now();
    let mut rows = vec![vec![
        "LAB".to_string(),
        "TOPOLOGY".into(),
        "NODES".into(),
        "RUNNING".into(),
        "EXPIRES".into(),
    ]];
    for l in labs {
        rows.push(vec![
            l.lab,
            l.topology,
            l.nodes.to_string(),
            l.running.to_string(),
            match l.expires_at {
                Some(e) if e > t => format!("in {}", human(e - t)),
                Some(_) => "expired".into(),
                None => "-".into(),
            },
        ]);
    }
    print!("{}", v6lab_core::report::columns(&rows));
    Ok(ExitCode::SUCCESS)
}

pub async fn inspect(lab: String, output: Output) -> Result<ExitCode> {
    let rt = connect().await?;
    let st = rt.inspect(&lab).await?;
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&st)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("lab {} (topology {})", st.lab, st.topology);
    let mut rows = vec![vec![
        "NODE".to_string(),
        "STATE".into(),
        "INTERFACE".into(),
        "ADDRESSES".into(),
    ]];
    for n in &st.nodes {
        if n.interfaces.is_empty() {
            rows.push(vec![
                n.node.clone(),
                n.state.clone(),
                "-".into(),
                String::new(),
            ]);
        }
        for (k, i) in n.interfaces.iter().enumerate() {
            rows.push(vec![
                if k == 0 {
                    n.node.clone()
                } else {
                    String::new()
                },
                if k == 0 {
                    n.state.clone()
                } else {
                    String::new()
                },
                i.name.clone(),
                i.addresses
                    .iter()
                    .map(|a| {
                        format!(
                            "{}/{}{}",
                            a.address,
                            a.prefix_len,
                            if a.tentative { " (tentative)" } else { "" }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" "),
            ]);
        }
    }
    print!("{}", v6lab_core::report::columns(&rows));
    Ok(ExitCode::SUCCESS)
}

/// `v6lab exec`: the command's deadline and the output kept (a terminal is `v6lab shell`).
const EXEC_DEADLINE: std::time::Duration = std::time::Duration::from_secs(300);
const EXEC_OUTPUT_CAP: usize = 16 << 20;

pub async fn exec(lab: String, node: String, command: Vec<String>) -> Result<ExitCode> {
    let rt = connect().await?;
    let limits = ExecLimits::within(EXEC_DEADLINE).with_output_cap(EXEC_OUTPUT_CAP);
    let out = rt.exec(&lab, &node, &command, limits).await?;
    use std::io::Write;
    std::io::stdout().write_all(out.stdout.as_bytes())?;
    std::io::stderr().write_all(out.stderr.as_bytes())?;
    if let Some(reason) = &out.stopped {
        eprintln!("v6lab: {reason}");
        // As timeout(1) does.
        return Ok(ExitCode::from(124));
    }
    Ok(ExitCode::from(u8::try_from(out.exit_code).unwrap_or(1)))
}

fn window_size() -> (u16, u16) {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes a winsize into the pointer we own.
    let r = unsafe { libc::ioctl(libc::STDIN_FILENO, libc::TIOCGWINSZ, &mut ws) };
    if r == 0 && ws.ws_col > 0 {
        (ws.ws_col, ws.ws_row)
    } else {
        (80, 24)
    }
}

pub async fn shell(lab: String, node: String) -> Result<ExitCode> {
    use nix::sys::termios;
    let rt = connect().await?;
    let stdin_fd = std::io::stdin();
    let saved = if stdin_fd.is_terminal() {
        let saved = termios::tcgetattr(&stdin_fd).context("reading terminal settings")?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(&stdin_fd, termios::SetArg::TCSANOW, &raw)
            .context("raw terminal mode")?;
        Some(saved)
    } else {
        None
    };
    let (tx, rx) = futures::channel::mpsc::unbounded::<(u16, u16)>();
    let _ = tx.unbounded_send(window_size());
    let resize_task = tokio::spawn(async move {
        if let Ok(mut sig) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
        {
            while sig.recv().await.is_some() {
                if tx.unbounded_send(window_size()).is_err() {
                    break;
                }
            }
        }
    });
    let argv = vec!["/bin/bash".to_string(), "-l".to_string()];
    let mut stdout = tokio::io::stdout();
    let term = runtime::Terminal {
        stdin: Box::new(tokio::io::stdin()),
        stdout: &mut stdout,
        resize: Box::pin(rx),
    };
    let result = rt.exec_interactive(&lab, &node, &argv, term).await;
    resize_task.abort();
    if let Some(saved) = saved {
        let _ = termios::tcsetattr(&stdin_fd, termios::SetArg::TCSANOW, &saved);
    }
    let code = result?;
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

pub async fn images(c: ImagesCommand) -> Result<ExitCode> {
    let rt = connect().await?;
    match c {
        ImagesCommand::Build { force } => {
            let recipe = Recipe::locate()?;
            let say = |s: &str| eprintln!("image: {s}");
            let e = rt.ensure_image(&recipe, force, &say).await?;
            if e.built {
                println!("{} built in {:.0}s", e.tag, e.elapsed.as_secs_f32());
            } else {
                println!("{} is up to date", e.tag);
            }
        }
        ImagesCommand::Ls => {
            let current = Recipe::locate().ok().map(|r| r.tag());
            let mut rows = vec![vec!["IMAGE".to_string(), "SIZE".into(), "CURRENT".into()]];
            for (tag, size, _) in rt.images().await? {
                let cur = if Some(&tag) == current.as_ref() {
                    "yes"
                } else {
                    ""
                };
                rows.push(vec![tag, format!("{} MB", size / 1_000_000), cur.into()]);
            }
            print!("{}", v6lab_core::report::columns(&rows));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The plan of a running lab, read back from its nodes; `None` when there is no such lab.
async fn running_plan(rt: &dyn Runtime, lab: &str) -> Result<Option<Plan>> {
    let st = match rt.inspect(lab).await {
        Ok(st) => st,
        Err(runtime::Error::LabNotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let nodes: Vec<String> = st.nodes.iter().map(|n| n.node.clone()).collect();
    let (_, plan) = v6lab_runtime::exercise::lab_plan(rt, lab, &nodes).await?;
    Ok(Some(plan))
}

pub async fn check(lab: String, exercise: Option<String>, output: Output) -> Result<ExitCode> {
    let rt = connect().await?;
    let Some(plan) = running_plan(&*rt, &lab).await? else {
        eprintln!("error: there is no lab `{lab}` (see `v6lab ls`)");
        return Ok(ExitCode::from(2));
    };
    if let Some(x) = &exercise
        && !plan.exercises.iter().any(|e| &e.id == x)
    {
        let known: Vec<&str> = plan.exercises.iter().map(|e| e.id.as_str()).collect();
        bail!(
            "lab {lab} has no exercise `{x}`; exercises: {}",
            known.join(", ")
        );
    }
    let results = v6lab_runtime::exercise::run_exercises(
        &*rt,
        &lab,
        &plan,
        exercise.as_deref(),
        v6lab_runtime::exercise::Patience::UntilTimeout,
        std::time::Instant::now() + v6lab_runtime::exercise::budget(&plan, exercise.as_deref()),
    )
    .await;
    let all = results.iter().all(|e| e.passed);
    if output == Output::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"lab": lab, "passed": all, "exercises": results})
            )?
        );
    } else {
        for e in &results {
            println!(
                "{} {} — {}",
                if e.passed { "PASS" } else { "FAIL" },
                e.id,
                e.title
            );
            for c in &e.checks {
                println!(
                    "  {} [{}] {}: {}",
                    if c.passed { "ok  " } else { "FAIL" },
                    c.node,
                    c.title,
                    c.detail
                );
                if let Some(m) = &c.message {
                    println!("         {m}");
                }
            }
        }
        let done = results.iter().filter(|e| e.passed).count();
        println!("\n{done} of {} exercises done", results.len());
    }
    Ok(if all {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub async fn solve(lab: String, exercise: String) -> Result<ExitCode> {
    let rt = connect().await?;
    let Some(plan) = running_plan(&*rt, &lab).await? else {
        eprintln!("error: there is no lab `{lab}` (see `v6lab ls`)");
        return Ok(ExitCode::from(2));
    };
    let steps = v6lab_runtime::exercise::solve(&*rt, &lab, &plan, &exercise).await?;
    for (node, cmd) in steps {
        println!("{node}: {cmd}");
    }
    println!(
        "exercise {exercise} solved on lab {lab}; `v6lab check {lab} --exercise {exercise}` to verify"
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn graph(target: String, format: crate::topology_cmd::GraphFormat) -> Result<ExitCode> {
    let path = std::path::Path::new(&target);
    let plan = if path.is_file() {
        match load_plan(path)? {
            Ok((_, plan)) => plan,
            Err((src, d)) => {
                eprint!("{}", d.render(&src.text));
                return Ok(ExitCode::from(crate::EXIT_INVALID));
            }
        }
    } else {
        let rt = connect().await?;
        match running_plan(&*rt, &target).await? {
            Some(p) => p,
            None => {
                eprintln!(
                    "error: `{target}` is neither a topology file nor a running lab (see `v6lab ls`)"
                );
                return Ok(ExitCode::from(2));
            }
        }
    };
    print!("{}", crate::topology_cmd::draw(&plan, format));
    Ok(ExitCode::SUCCESS)
}
