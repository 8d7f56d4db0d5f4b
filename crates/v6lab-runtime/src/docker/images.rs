//! The lab image, built without a registry: `deploy/images/mkrootfs.sh` (mmdebstrap from the
//! host's Debian mirror) makes a rootfs tarball, which is imported into the engine.
//!
//! The tag is a hash of everything that goes into the image (package list, overlay, build
//! script), so an unchanged image is never rebuilt and a changed one gets a new tag.

use bollard::Docker;
use bollard::query_parameters::{CreateImageOptionsBuilder, ListImagesOptionsBuilder};
use futures::StreamExt;
use std::time::Instant;

pub use crate::image::{Ensured, ImageError, REPOSITORY, Recipe, recipe_hash};

impl From<bollard::errors::Error> for ImageError {
    fn from(e: bollard::errors::Error) -> Self {
        ImageError::Engine(Box::new(e))
    }
}

/// Whether the engine has an image with this reference.
pub async fn exists(docker: &Docker, reference: &str) -> Result<bool, ImageError> {
    match docker.inspect_image(reference).await {
        Ok(_) => Ok(true),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Builds the lab image unless an image with the recipe's tag exists (or `force`).
/// `progress` receives one line per step.
pub async fn ensure(
    docker: &Docker,
    recipe: &Recipe,
    force: bool,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<Ensured, ImageError> {
    let start = Instant::now();
    let tag = recipe.tag();
    if !force && exists(docker, &tag).await? {
        return Ok(Ensured {
            tag,
            built: false,
            elapsed: start.elapsed(),
        });
    }
    let tmp = std::env::temp_dir().join(format!(
        "v6lab-image-{}-{}",
        recipe.hash,
        std::process::id()
    ));
    std::fs::create_dir_all(&tmp)?;
    let tarball = tmp.join("rootfs.tar");
    progress(&format!(
        "building the root filesystem from Debian packages (mmdebstrap; {})",
        recipe.dir.display()
    ));
    let out = tokio::process::Command::new("bash")
        .arg(recipe.dir.join("mkrootfs.sh"))
        .arg(&tarball)
        .output()
        .await;
    let result = async {
        let out = out?;
        if !out.status.success() {
            return Err(ImageError::Build(
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ));
        }
        progress(&format!("importing into the engine as {tag}"));
        let file = tokio::fs::File::open(&tarball).await?;
        let body = bollard::body_try_stream(tokio_util::io::ReaderStream::new(file));
        let opts = CreateImageOptionsBuilder::default()
            .from_src("-")
            .repo(REPOSITORY)
            .tag(&recipe.hash)
            .changes(vec!["CMD [\"sleep\", \"infinity\"]".to_string()])
            .build();
        let mut stream = docker.create_image(Some(opts), Some(body), None);
        while let Some(item) = stream.next().await {
            item?;
        }
        // `latest` follows the newest build, for people typing `docker run`.
        docker
            .tag_image(
                &tag,
                Some(
                    bollard::query_parameters::TagImageOptionsBuilder::default()
                        .repo(REPOSITORY)
                        .tag("latest")
                        .build(),
                ),
            )
            .await?;
        Ok(())
    }
    .await;
    let _ = std::fs::remove_dir_all(&tmp);
    result?;
    Ok(Ensured {
        tag,
        built: true,
        elapsed: start.elapsed(),
    })
}

/// Lab images present in the engine: (reference, size in bytes, created unix seconds).
pub async fn list(docker: &Docker) -> Result<Vec<(String, i64, i64)>, ImageError> {
    let opts = ListImagesOptionsBuilder::default().build();
    let images = docker.list_images(Some(opts)).await?;
    let mut out = Vec::new();
    for i in images {
        for t in &i.repo_tags {
            if t.starts_with(&format!("{REPOSITORY}:")) {
                out.push((t.clone(), i.size, i.created));
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_changes_with_content_and_not_otherwise() {
        let d = std::env::temp_dir().join(format!("v6lab-recipe-test-{}", std::process::id()));
        std::fs::create_dir_all(d.join("rootfs/etc")).unwrap();
        std::fs::write(d.join("packages.txt"), "iproute2\n").unwrap();
        std::fs::write(d.join("rootfs/etc/motd"), "hi\n").unwrap();
        let a = recipe_hash(&d).unwrap();
        assert_eq!(a, recipe_hash(&d).unwrap());
        std::fs::write(d.join("rootfs/etc/motd"), "hello\n").unwrap();
        let b = recipe_hash(&d).unwrap();
        assert_ne!(a, b);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
