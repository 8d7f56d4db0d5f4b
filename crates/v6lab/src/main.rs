//! `v6lab`: IPv6 testbed labs from a declarative topology.

mod client_cmd;
mod kubernetes_cmd;
mod lab_cmd;
mod runtime_choice;
mod serve_cmd;
mod topology_cmd;
mod transport;

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit code for an invalid topology.
pub const EXIT_INVALID: u8 = 2;

#[derive(Parser)]
#[command(
    name = "v6lab",
    version,
    about = "IPv6 testbed labs from a declarative topology",
    long_about = "v6lab turns a lab topology (YAML) into running containers wired into IPv6-only, \
dual-stack, IPv4-only and NAT64/DNS64 segments, and removes every trace of a lab when it ends.\n\n\
Start with a sample:\n  v6lab validate topologies/nat64-dns64.yaml\n  v6lab plan topologies/nat64-dns64.yaml\n  \
v6lab up topologies/nat64-dns64.yaml\n  v6lab shell nat64-dns64 client\n  v6lab down nat64-dns64",
    after_help = "The topology format is described in docs/topology.md; `v6lab schema` prints its JSON Schema."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Where labs run: this host's Docker engine, or a Kubernetes cluster (the usual
    /// kubeconfig, or the cluster v6lab runs in)
    #[arg(
        long,
        global = true,
        value_enum,
        env = "V6LAB_RUNTIME",
        default_value = "docker"
    )]
    runtime: RuntimeKind,
    /// The namespace of labs on Kubernetes
    #[arg(long, global = true, env = "V6LAB_NAMESPACE", default_value = v6lab_runtime::kubernetes::DEFAULT_NAMESPACE)]
    namespace: String,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RuntimeKind {
    Docker,
    Kubernetes,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// For people.
    Text,
    /// For scripts.
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Check a topology file; every problem is reported with file:line:column and a hint.
    /// Exit code: 0 valid, 2 invalid, 1 other failure.
    Validate {
        file: PathBuf,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
        #[command(flatten)]
        policy: topology_cmd::PolicyArgs,
    },
    /// Show the address plan of a topology: every segment, interface, address and route.
    Plan {
        file: PathBuf,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
        /// Only this node.
        #[arg(long)]
        node: Option<String>,
        /// With --node: print the files rendered for the node (daemon configs, scripts).
        #[arg(long, requires = "node")]
        files: bool,
        #[command(flatten)]
        student: topology_cmd::StudentArgs,
    },
    /// Print the JSON Schema of topology files (for editor completion and checking).
    Schema,
    /// Draw a topology (a file) or a running lab: SVG, Graphviz DOT or Mermaid.
    Graph {
        /// A topology file, or the name of a running lab.
        target: String,
        #[arg(long, value_enum, default_value = "svg")]
        format: topology_cmd::GraphFormat,
    },
    /// Start a lab from a topology file.
    Up(lab_cmd::UpArgs),
    /// Remove a lab (or every lab with --all): containers, bridges, veths. Safe to repeat.
    Down(lab_cmd::DownArgs),
    /// List running labs.
    Ls {
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Show a lab's nodes, their state and addresses.
    Inspect {
        lab: String,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Run a command in a node; its output and exit code are passed through.
    Exec {
        lab: String,
        node: String,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Open an interactive shell in a node.
    Shell { lab: String, node: String },
    /// Run the checks of a lab's exercises. Exit code: 0 all pass, 1 some fail, 2 no such lab.
    Check {
        /// The lab (omit with --class).
        #[arg(required_unless_present = "class")]
        lab: Option<String>,
        /// Every student's lab of a class (through the controller): students x exercises.
        #[arg(long, conflicts_with = "lab")]
        class: Option<String>,
        #[command(flatten)]
        remote: client_cmd::Remote,
        /// Only this exercise.
        #[arg(long)]
        exercise: Option<String>,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Apply an exercise's reference solution to a lab.
    Solve { lab: String, exercise: String },
    /// Run the controller: classes, lifetimes, automatic teardown, the HTTP API.
    Serve(serve_cmd::ServeArgs),
    /// Classes: one lab per student (needs a running controller).
    Class {
        #[command(flatten)]
        remote: client_cmd::Remote,
        #[command(subcommand)]
        command: client_cmd::ClassCommand,
    },
    /// What happened to labs and classes (needs a running controller).
    Events {
        #[command(flatten)]
        remote: client_cmd::Remote,
        /// Keep printing new events as they happen.
        #[arg(long, short)]
        follow: bool,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Lab images, built from Debian packages without a registry.
    Images {
        #[command(subcommand)]
        command: lab_cmd::ImagesCommand,
    },
    /// Kubernetes: what the Kubernetes runtime needs in a cluster.
    Kubernetes {
        #[command(subcommand)]
        command: kubernetes_cmd::KubernetesCommand,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    runtime_choice::choose_runtime(match cli.runtime {
        RuntimeKind::Docker => v6lab_runtime::choice::RuntimeChoice::Docker,
        RuntimeKind::Kubernetes => v6lab_runtime::choice::RuntimeChoice::Kubernetes {
            namespace: cli.namespace.clone(),
        },
    });
    let result = match cli.command {
        Command::Validate {
            file,
            output,
            policy,
        } => topology_cmd::validate(&file, &policy, output),
        Command::Plan {
            file,
            output,
            node,
            files,
            student,
        } => topology_cmd::plan(&file, output, node.as_deref(), files, &student),
        Command::Schema => topology_cmd::schema(),
        Command::Graph { target, format } => lab_cmd::run(lab_cmd::graph(target, format)),
        Command::Up(a) => lab_cmd::run(lab_cmd::up(a)),
        Command::Down(a) => lab_cmd::run(lab_cmd::down(a)),
        Command::Ls { output } => lab_cmd::run(lab_cmd::ls(output)),
        Command::Inspect { lab, output } => lab_cmd::run(lab_cmd::inspect(lab, output)),
        Command::Exec { lab, node, command } => lab_cmd::run(lab_cmd::exec(lab, node, command)),
        Command::Shell { lab, node } => lab_cmd::run(lab_cmd::shell(lab, node)),
        Command::Check {
            lab,
            class,
            remote,
            exercise,
            output,
        } => match (lab, class) {
            (_, Some(class)) => lab_cmd::run(client_cmd::check_class(remote, class, output)),
            (Some(lab), None) => lab_cmd::run(lab_cmd::check(lab, exercise, output)),
            (None, None) => unreachable!("clap requires one"),
        },
        Command::Serve(a) => lab_cmd::run(serve_cmd::serve(a)),
        Command::Class { remote, command } => lab_cmd::run(client_cmd::class(remote, command)),
        Command::Events {
            remote,
            follow,
            output,
        } => lab_cmd::run(client_cmd::events(remote, follow, output)),
        Command::Solve { lab, exercise } => lab_cmd::run(lab_cmd::solve(lab, exercise)),
        Command::Images { command } => lab_cmd::run(lab_cmd::images(command)),
        Command::Kubernetes { command } => kubernetes_cmd::run(command),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", chain(&e));
            ExitCode::from(1)
        }
    }
}

/// An error and its causes, each said once: most errors already show their cause in their
/// own message, and `{:#}` would repeat it.
fn chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_error_says_each_cause_once() {
        let inner = std::io::Error::other("disk full");
        let e = anyhow::Error::new(inner)
            .context("writing x: disk full")
            .context("saving");
        assert_eq!(super::chain(&e), "saving: writing x: disk full");
    }
}
