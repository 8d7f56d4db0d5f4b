//! Errors in a topology, each pointing at a file, line and column, with a hint how to fix it.

use crate::sp::Loc;
use serde::Serialize;
use std::fmt::Write as _;

/// One problem found in a topology.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub loc: Loc,
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
    /// Other places involved (e.g. where a clashing prefix was first declared).
    pub related: Vec<Related>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Related {
    pub loc: Loc,
    pub message: String,
}

impl Diagnostic {
    pub fn new(loc: Loc, message: impl Into<String>) -> Self {
        Diagnostic {
            loc,
            message: message.into(),
            hint: None,
            related: Vec::new(),
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn related(mut self, loc: Loc, message: impl Into<String>) -> Self {
        self.related.push(Related {
            loc,
            message: message.into(),
        });
        self
    }
}

/// All problems of one topology file, in file order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostics {
    pub file: String,
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn new(file: impl Into<String>, mut items: Vec<Diagnostic>) -> Self {
        items.sort_by_key(|d| d.loc);
        items.dedup();
        Diagnostics {
            file: file.into(),
            items,
        }
    }

    /// Renders every diagnostic with the source line and a marker under the offending text.
    pub fn render(&self, source: &str) -> String {
        let lines: Vec<&str> = source.lines().collect();
        let mut out = String::new();
        for d in &self.items {
            let _ = writeln!(out, "error: {}", d.message);
            render_location(&mut out, &self.file, &lines, d.loc, None);
            for r in &d.related {
                let _ = writeln!(out, "note: {}", r.message);
                render_location(&mut out, &self.file, &lines, r.loc, None);
            }
            if let Some(h) = &d.hint {
                for (i, line) in h.lines().enumerate() {
                    let lead = if i == 0 { "  = hint: " } else { "          " };
                    let _ = writeln!(out, "{lead}{line}");
                }
            }
            out.push('\n');
        }
        let n = self.items.len();
        let _ = writeln!(
            out,
            "{} error{} in {}",
            n,
            if n == 1 { "" } else { "s" },
            self.file
        );
        out
    }
}

fn render_location(out: &mut String, file: &str, lines: &[&str], loc: Loc, _label: Option<&str>) {
    if !loc.is_known() {
        let _ = writeln!(out, "  --> {file}");
        return;
    }
    let _ = writeln!(out, "  --> {file}:{}:{}", loc.line, loc.column);
    let Some(text) = lines.get(loc.line as usize - 1) else {
        return;
    };
    let num = loc.line.to_string();
    let pad = " ".repeat(num.len());
    let col = loc.column.max(1) as usize - 1;
    let width = token_width(text, col);
    let _ = writeln!(out, "{pad} |");
    let _ = writeln!(out, "{num} | {text}");
    let lead: String = text
        .chars()
        .take(col)
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    let _ = writeln!(out, "{pad} | {lead}{}", "^".repeat(width));
}

/// Width of the YAML token starting at character `col` (at least 1).
fn token_width(text: &str, col: usize) -> usize {
    let rest: Vec<char> = text.chars().skip(col).collect();
    let Some(&first) = rest.first() else {
        return 1;
    };
    if first == '"' || first == '\'' {
        let end = rest[1..].iter().position(|&c| c == first).map(|p| p + 2);
        return end.unwrap_or(rest.len()).max(1);
    }
    let n = rest
        .iter()
        .take_while(|&&c| !c.is_whitespace() && !",{}[]#".contains(c))
        .count();
    // A key ends at its colon.
    let n = rest[..n]
        .windows(2)
        .position(|w| w[0] == ':' && (w[1] == ' '))
        .unwrap_or(if rest[..n].last() == Some(&':') {
            n - 1
        } else {
            n
        });
    n.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_under_key_and_value() {
        let src = "name: lab\nsegments:\n  lan: {famly: ipv6-only}\n";
        let d = Diagnostics::new(
            "t.yaml",
            vec![
                Diagnostic::new(Loc::new(3, 9), "unknown key `famly`")
                    .hint("did you mean `family`?"),
            ],
        );
        let r = d.render(src);
        assert!(r.contains("  --> t.yaml:3:9\n"), "{r}");
        assert!(
            r.contains("3 |   lan: {famly: ipv6-only}\n  |         ^^^^^\n"),
            "{r}"
        );
        assert!(r.contains("= hint: did you mean `family`?"), "{r}");
        assert!(r.ends_with("1 error in t.yaml\n"), "{r}");
    }
}
