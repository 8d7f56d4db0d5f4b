//! Commands that touch a container engine: up, down, ls, inspect, exec, shell, images.

use crate::Output;
use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;

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
}

#[derive(Args)]
pub struct DownArgs {
    /// Lab to remove.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub lab: Option<String>,
    /// Remove every lab and every object v6lab made on this host.
    #[arg(long)]
    pub all: bool,
}

#[derive(Subcommand)]
pub enum ImagesCommand {
    /// Build the lab image from Debian packages (skipped when up to date).
    Build {
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

pub async fn up(_a: UpArgs) -> Result<ExitCode> {
    bail!("not yet")
}
pub async fn down(_a: DownArgs) -> Result<ExitCode> {
    bail!("not yet")
}
pub async fn ls(_o: Output) -> Result<ExitCode> {
    bail!("not yet")
}
pub async fn inspect(_l: String, _o: Output) -> Result<ExitCode> {
    bail!("not yet")
}
pub async fn exec(_l: String, _n: String, _c: Vec<String>) -> Result<ExitCode> {
    bail!("not yet")
}
pub async fn shell(_l: String, _n: String) -> Result<ExitCode> {
    bail!("not yet")
}
pub async fn images(_c: ImagesCommand) -> Result<ExitCode> {
    bail!("not yet")
}
