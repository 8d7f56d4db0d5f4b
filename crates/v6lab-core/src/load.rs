//! Reading a topology: size and encoding checks, YAML syntax, shape against the schema, typed
//! decoding. Every step reports problems as located [`Diagnostic`]s.

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::sp::{Loc, Sp};
use crate::topology::Topology;
use crate::yaml::Yaml;

/// Topology files larger than this are refused before parsing.
pub const MAX_BYTES: usize = 10 * 1024 * 1024;

/// A topology file's name and text, kept for rendering diagnostics.
#[derive(Debug, Clone)]
pub struct Source {
    pub file: String,
    pub text: String,
}

/// Parses and shape-checks a topology. `file` is only used in messages.
pub fn parse(file: &str, bytes: &[u8]) -> Result<(Source, Topology), (Source, Diagnostics)> {
    let fail = |text: String, items: Vec<Diagnostic>| {
        Err((
            Source {
                file: file.to_owned(),
                text,
            },
            Diagnostics::new(file, items),
        ))
    };
    if bytes.len() > MAX_BYTES {
        return fail(
            String::new(),
            vec![
                Diagnostic::new(
                    Loc::NONE,
                    format!(
                        "the file is {:.1} MB; topology files are limited to 10 MB",
                        bytes.len() as f64 / 1e6
                    ),
                )
                .hint("a topology is a short description of a lab; is this the right file?"),
            ],
        );
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t.to_owned(),
        Err(e) => {
            let good = &bytes[..e.valid_up_to()];
            let good = std::str::from_utf8(good).unwrap_or_default();
            let line = good.matches('\n').count() + 1;
            let column = good.rsplit('\n').next().unwrap_or("").chars().count() + 1;
            let lossy = String::from_utf8_lossy(bytes).into_owned();
            return fail(
                lossy,
                vec![
                    Diagnostic::new(
                        Loc::new(line as u32, column as u32),
                        "the file is not UTF-8 text",
                    )
                    .hint("save the file as UTF-8 (most editors offer this in \"Save as\")"),
                ],
            );
        }
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text).to_owned();
    let doc: Sp<Yaml> = match serde_saphyr::from_str(&text) {
        Ok(d) => d,
        Err(e) => {
            let d = saphyr_diagnostic(&e);
            return fail(text, vec![d]);
        }
    };
    if matches!(doc.value, Yaml::Null) {
        return fail(
            text,
            vec![
                Diagnostic::new(Loc::new(1, 1), "the topology file is empty").hint(
                    "a topology needs at least `name:`, `segments:` and `nodes:`; \
                 copy one from topologies/ to start",
                ),
            ],
        );
    }
    let shape = crate::structure::check(&doc, crate::schema::schema());
    if !shape.is_empty() {
        return fail(text, shape);
    }
    match serde_saphyr::from_str::<Topology>(&text) {
        Ok(t) => Ok((
            Source {
                file: file.to_owned(),
                text,
            },
            t,
        )),
        Err(e) => {
            let d = saphyr_diagnostic(&e);
            fail(text, vec![d])
        }
    }
}

fn saphyr_diagnostic(e: &serde_saphyr::Error) -> Diagnostic {
    let loc = e
        .location()
        .map(|l| Loc::from_saphyr(&l))
        .unwrap_or(Loc::NONE);
    let opts = serde_saphyr::render_options! { snippets: serde_saphyr::SnippetMode::Off };
    let raw = e.render_with_options(opts);
    let mut msg = raw.trim().trim_start_matches("error: ").to_owned();
    // Drop a leading "line N column M: " (we print the location ourselves).
    if let Some(rest) = msg.strip_prefix("line ")
        && let Some((_, tail)) = rest.split_once(": ")
    {
        msg = tail.to_owned();
    }
    let mut msg = msg.lines().next().unwrap_or_default().to_owned();
    if let Some(i) = msg.rfind(" at line ") {
        msg.truncate(i);
    }
    if let Some(key) = msg.strip_prefix("duplicate mapping key: ") {
        let key = key.split(',').next().unwrap_or(key);
        return Diagnostic::new(
            loc,
            format!("the key `{key}` appears twice in this mapping"),
        )
        .hint("each key may appear once; remove or rename one of them");
    }
    Diagnostic::new(loc, format!("YAML syntax: {msg}"))
        .hint("check indentation (spaces, not tabs), colons after keys, and closing brackets")
}
