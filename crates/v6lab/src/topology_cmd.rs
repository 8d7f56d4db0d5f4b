//! `validate`, `plan`, `schema`: the pure core on the command line.

use crate::{EXIT_INVALID, Output};
use anyhow::{Context, Result, bail};
use std::io::Read;
use std::path::Path;
use std::process::ExitCode;
use v6lab_core::load::MAX_BYTES;
use v6lab_core::{Diagnostics, Plan, Source};

/// Reads a topology file, refusing huge files before reading them whole.
pub fn read_topology(path: &Path) -> Result<Vec<u8>> {
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut bytes = Vec::new();
    f.take(MAX_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(bytes)
}

/// The administrator's policy for topologies: maxima per node and per lab, allowed images.
#[derive(clap::Args, Clone, Default)]
pub struct PolicyArgs {
    /// Policy file (maxima per node and per lab, images allowed besides the lab image).
    /// [default: /etc/v6lab/policy.yaml if it exists, else the built-in policy]
    #[arg(long, env = "V6LAB_POLICY", value_name = "FILE")]
    pub policy: Option<std::path::PathBuf>,
    /// Also allow nodes to name this image in `image:` (repeatable).
    #[arg(long = "allow-image", value_name = "IMAGE")]
    pub allow_images: Vec<String>,
}

impl PolicyArgs {
    /// Reads the policy file (the given one must exist; the default one may be missing).
    pub fn load(&self) -> Result<v6lab_core::Policy> {
        use v6lab_core::policy::DEFAULT_FILE;
        let path = match &self.policy {
            Some(p) => Some(p.clone()),
            None => Some(std::path::PathBuf::from(DEFAULT_FILE)).filter(|p| p.exists()),
        };
        let mut policy = match path {
            None => v6lab_core::Policy::default(),
            Some(p) => {
                let mut text = String::new();
                std::fs::File::open(&p)
                    .and_then(|f| f.take(1 << 20).read_to_string(&mut text))
                    .with_context(|| format!("cannot read the policy file {}", p.display()))?;
                v6lab_core::Policy::parse(&p.display().to_string(), &text)?
            }
        };
        for image in &self.allow_images {
            policy.allow_image(image);
        }
        Ok(policy)
    }

    /// Loads the policy and makes it the one every plan of this process is checked against.
    pub fn install(&self) -> Result<()> {
        let segment_mtu = crate::runtime_choice::runtime_choice().segment_mtu();
        v6lab_core::policy::install(self.load()?.with_segment_mtu(segment_mtu));
        Ok(())
    }
}

/// Plans a topology file: `Ok(Err(..))` when the topology is invalid.
pub fn load_plan(path: &Path) -> Result<Result<(Source, Plan), (Source, Diagnostics)>> {
    let bytes = read_topology(path)?;
    Ok(v6lab_core::plan_source(&path.display().to_string(), &bytes))
}

/// Plans the lab of the student numbered `variation` (see `StudentArgs`).
fn load_plan_for(
    path: &Path,
    variation: Option<v6lab_core::vary::Variation>,
) -> Result<Result<(Source, Plan), (Source, Diagnostics)>> {
    let bytes = read_topology(path)?;
    if variation.is_some()
        && let Ok((_, t)) = v6lab_core::load::parse("topology", &bytes)
        && t.vary.is_none()
    {
        eprintln!(
            "note: {} has no `vary:`: every student's lab is the lab as written",
            path.display()
        );
    }
    Ok(v6lab_core::plan_source_for(
        &path.display().to_string(),
        &bytes,
        v6lab_core::policy::current(),
        variation,
    ))
}

/// Which student's lab `v6lab plan` shows: with `vary:`, each student of a class has their own
/// prefixes, numbered by their place in the class's roster.
#[derive(clap::Args, Clone, Default)]
pub struct StudentArgs {
    /// Plan this student's lab (a topology with `vary:`): their own prefixes.
    #[arg(long, value_name = "NAME")]
    pub student: Option<String>,
    /// With --student: the class has this many students (student-01, student-02, ...), as
    /// given to `v6lab class create --students`.
    #[arg(long, requires = "student", conflicts_with = "roster")]
    pub students: Option<usize>,
    /// With --student: the class's roster (one name a line), as given to `v6lab class create
    /// --roster`.
    #[arg(long, requires = "student", value_name = "FILE")]
    pub roster: Option<std::path::PathBuf>,
}

impl StudentArgs {
    /// The student's variation; `None` without --student.
    pub fn variation(&self) -> Result<Option<v6lab_core::vary::Variation>> {
        let Some(student) = &self.student else {
            return Ok(None);
        };
        let roster: Vec<String> = match (&self.roster, self.students) {
            (Some(p), _) => crate::client_cmd::read_roster(p)?
                .iter()
                .map(|s| v6lab_core::values::dns_safe(s))
                .collect(),
            (None, Some(n)) => (1..=n).map(|i| format!("student-{i:02}")).collect(),
            (None, None) => bail!(
                "--student needs the class's students: --students N or --roster FILE, as given to `v6lab class create` (a student's values depend on their place in the roster)"
            ),
        };
        let name = v6lab_core::values::dns_safe(student);
        match v6lab_core::vary::Variation::in_roster(&name, &roster) {
            Some(v) => Ok(Some(v)),
            None if roster.contains(&name) => {
                bail!("`{name}` is past the 255th student: only 255 students have their own values")
            }
            None => bail!(
                "there is no student `{name}` in the class; students: {}",
                roster.join(", ")
            ),
        }
    }
}

fn report_invalid(src: &Source, d: &Diagnostics, output: Output) -> ExitCode {
    match output {
        Output::Text => eprint!("{}", d.render(&src.text)),
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"valid": false, "file": d.file, "errors": d.items})
            )
            .expect("json")
        ),
    }
    ExitCode::from(EXIT_INVALID)
}

pub fn validate(path: &Path, policy: &PolicyArgs, output: Output) -> Result<ExitCode> {
    policy.install()?;
    match load_plan(path)? {
        Ok((src, plan)) => {
            match output {
                Output::Text => println!(
                    "{}: valid — lab `{}`, {}, {}, {}",
                    src.file,
                    plan.name,
                    count(plan.segments.len(), "segment"),
                    count(plan.nodes.len(), "node"),
                    count(plan.exercises.len(), "exercise")
                ),
                Output::Json => println!(
                    "{}",
                    serde_json::json!({"valid": true, "file": src.file, "lab": plan.name})
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        Err((src, d)) => Ok(report_invalid(&src, &d, output)),
    }
}

pub fn plan(
    path: &Path,
    output: Output,
    node: Option<&str>,
    files: bool,
    student: &StudentArgs,
) -> Result<ExitCode> {
    let (_, plan) = match load_plan_for(path, student.variation()?)? {
        Ok(x) => x,
        Err((src, d)) => return Ok(report_invalid(&src, &d, output)),
    };
    if let Some(name) = node {
        let Some(n) = plan.node(name) else {
            bail!(
                "the topology has no node `{name}`; nodes: {}",
                plan.nodes
                    .iter()
                    .map(|n| n.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        };
        match (output, files) {
            (Output::Json, _) => println!("{}", serde_json::to_string_pretty(n)?),
            (Output::Text, true) => {
                for f in &n.files {
                    println!("==> {} (mode {:o}) <==", f.path, f.mode);
                    print!("{}", f.content);
                    if !f.content.ends_with('\n') {
                        println!();
                    }
                    println!();
                }
            }
            (Output::Text, false) => {
                let mut one = plan.clone();
                one.nodes.retain(|x| x.name == name);
                print!("{}", v6lab_core::report::plan_table(&one));
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&plan)?),
        Output::Text => print!("{}", v6lab_core::report::plan_table(&plan)),
    }
    Ok(ExitCode::SUCCESS)
}

pub fn schema() -> Result<ExitCode> {
    println!(
        "{}",
        serde_json::to_string_pretty(v6lab_core::schema::schema())?
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    Svg,
    Dot,
    Mermaid,
}

pub fn draw(plan: &Plan, format: GraphFormat) -> String {
    match format {
        GraphFormat::Svg => v6lab_core::graph::svg(plan),
        GraphFormat::Dot => v6lab_core::graph::dot(plan),
        GraphFormat::Mermaid => v6lab_core::graph::mermaid(plan),
    }
}

fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::StudentArgs;

    #[test]
    fn a_student_is_numbered_by_their_place_in_the_class() {
        let args = |student: &str, students: Option<usize>| StudentArgs {
            student: Some(student.into()),
            students,
            roster: None,
        };
        let v = args("Student-02", Some(3)).variation().unwrap().unwrap();
        assert_eq!(v.number(), 2);
        assert!(StudentArgs::default().variation().unwrap().is_none());
        let e = args("student-02", None)
            .variation()
            .unwrap_err()
            .to_string();
        assert!(e.contains("--students N or --roster FILE"), "{e}");
        let e = args("bob", Some(3)).variation().unwrap_err().to_string();
        assert!(e.contains("no student `bob`"), "{e}");
    }
}
