//! The lab image as every runtime sees it: its recipe (`deploy/images`) and the tag derived from
//! it, and what ensuring it did. Building it is the Docker runtime's ([`crate::docker::images`]);
//! a cluster holds it on its nodes.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Repository of lab images.
pub const REPOSITORY: &str = "v6lab/node";

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(
        "cannot find the image recipe (deploy/images/packages.txt); set V6LAB_IMAGES_DIR to the deploy/images folder of v6lab"
    )]
    RecipeNotFound,
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("building the image root filesystem failed:\n{0}")]
    Build(String),
    #[error("the engine refused the image: {0}")]
    Engine(#[source] crate::runtime::Cause),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Where the recipe of the lab image lives, and its content hash.
#[derive(Debug, Clone)]
pub struct Recipe {
    pub dir: PathBuf,
    pub hash: String,
}

impl Recipe {
    /// Finds `deploy/images`: `$V6LAB_IMAGES_DIR`, next to the source tree the binary was
    /// built from, beside the executable, or `/usr/share/v6lab/images`.
    pub fn locate() -> Result<Recipe, ImageError> {
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Some(d) = std::env::var_os("V6LAB_IMAGES_DIR") {
            candidates.push(d.into());
        }
        candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/images"));
        if let Ok(exe) = std::env::current_exe() {
            for up in exe.ancestors().skip(1).take(4) {
                candidates.push(up.join("deploy/images"));
            }
        }
        candidates.push("/usr/share/v6lab/images".into());
        let dir = candidates
            .into_iter()
            .find(|d| d.join("packages.txt").is_file() && d.join("mkrootfs.sh").is_file())
            .ok_or(ImageError::RecipeNotFound)?;
        let hash = recipe_hash(&dir)?;
        Ok(Recipe { dir, hash })
    }

    /// `v6lab/node:<hash>`.
    pub fn tag(&self) -> String {
        format!("{REPOSITORY}:{}", self.hash)
    }
}

/// SHA-256 over the relative path and bytes of every file of the recipe, in sorted order.
pub fn recipe_hash(dir: &Path) -> Result<String, ImageError> {
    let mut files = Vec::new();
    collect(dir, dir, &mut files)?;
    files.sort();
    let mut h = Sha256::new();
    for rel in files {
        let p = dir.join(&rel);
        let bytes = std::fs::read(&p).map_err(|source| ImageError::Read {
            path: p.clone(),
            source,
        })?;
        h.update(rel.to_string_lossy().as_bytes());
        h.update([0]);
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(&bytes);
    }
    Ok(hex::encode(&h.finalize()[..6]))
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), ImageError> {
    let rd = std::fs::read_dir(dir).map_err(|source| ImageError::Read {
        path: dir.into(),
        source,
    })?;
    for e in rd {
        let e = e?;
        let p = e.path();
        if e.file_type()?.is_dir() {
            collect(root, &p, out)?;
        } else {
            out.push(p.strip_prefix(root).expect("under root").to_path_buf());
        }
    }
    Ok(())
}

/// What ensuring the lab image did ([`crate::runtime::Runtime::ensure_image`]).
#[derive(Debug, Clone)]
pub struct Ensured {
    pub tag: String,
    /// False when the image was up to date.
    pub built: bool,
    pub elapsed: Duration,
}
