//! Checks the shape of a YAML document against the topology's JSON Schema, reporting every
//! unknown key (with a "did you mean"), missing key and wrong type in one run.
//!
//! The schema is generated from the topology types ([`crate::schema`]), so the types stay the
//! single source of truth; this walker understands the subset schemars produces.

use crate::diagnostic::Diagnostic;
use crate::sp::{Loc, Sp};
use crate::yaml::Yaml;
use serde_json::Value;

pub fn check(doc: &Sp<Yaml>, schema: &Value) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    Walker { root: schema }.walk(doc, schema, "", &mut out);
    out
}

struct Walker<'s> {
    root: &'s Value,
}

impl<'s> Walker<'s> {
    fn resolve(&self, mut s: &'s Value) -> &'s Value {
        while let Some(r) = s.get("$ref").and_then(Value::as_str) {
            let name = r.rsplit('/').next().unwrap_or_default();
            match self.root.get("$defs").and_then(|d| d.get(name)) {
                Some(t) => s = t,
                None => break,
            }
        }
        s
    }

    fn walk(&self, node: &Sp<Yaml>, schema: &'s Value, path: &str, out: &mut Vec<Diagnostic>) {
        let schema = self.resolve(schema);
        if schema.as_bool() == Some(true) {
            return;
        }
        if let Some(branches) = schema
            .get("anyOf")
            .or_else(|| schema.get("oneOf"))
            .and_then(Value::as_array)
        {
            self.walk_alternatives(node, branches, path, out);
            return;
        }
        if let Some(values) = schema.get("enum").and_then(Value::as_array) {
            let allowed: Vec<&str> = values.iter().filter_map(Value::as_str).collect();
            self.check_choice(node, &allowed, path, out);
            return;
        }
        if let Some(c) = schema.get("const").and_then(Value::as_str) {
            self.check_choice(node, &[c], path, out);
            return;
        }
        if !type_matches(node, schema) {
            out.push(
                Diagnostic::new(
                    node.loc,
                    format!(
                        "{} must be {}, found {}",
                        describe(path),
                        expected(schema),
                        node.kind()
                    ),
                )
                .hint(example_for(schema)),
            );
            return;
        }
        match &node.value {
            Yaml::Map(entries) => self.walk_map(node.loc, entries, schema, path, out),
            Yaml::Seq(items) => {
                if let Some(item) = schema.get("items") {
                    for (i, it) in items.iter().enumerate() {
                        self.walk(it, item, &format!("{path}[{i}]"), out);
                    }
                }
            }
            Yaml::Int(i) => {
                if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
                    && (*i as f64) < min
                {
                    out.push(Diagnostic::new(
                        node.loc,
                        format!("{} must be at least {min}, found {i}", describe(path)),
                    ));
                }
                if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
                    && (*i as f64) > max
                {
                    out.push(Diagnostic::new(
                        node.loc,
                        format!("{} must be at most {max}, found {i}", describe(path)),
                    ));
                }
            }
            _ => {}
        }
    }

    fn walk_map(
        &self,
        loc: Loc,
        entries: &[(Sp<String>, Sp<Yaml>)],
        schema: &'s Value,
        path: &str,
        out: &mut Vec<Diagnostic>,
    ) {
        let props = schema.get("properties").and_then(Value::as_object);
        let additional = schema.get("additionalProperties");
        // Required keys that an unknown key probably meant: reported once, as the typo.
        let mut typo_for: Vec<&str> = Vec::new();
        for (key, value) in entries {
            let sub = join(path, &key.value);
            if let Some(p) = props.and_then(|p| p.get(&key.value)) {
                self.walk(value, p, &sub, out);
            } else if let Some(a) = additional.filter(|a| a.as_bool() != Some(false)) {
                self.walk(value, a, &sub, out);
            } else {
                let known: Vec<&str> = props
                    .map(|p| p.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                let mut d = Diagnostic::new(
                    key.loc,
                    format!("unknown key `{}` in {}", key.value, describe(path)),
                );
                d = match did_you_mean(&key.value, &known) {
                    Some(s) => {
                        typo_for.push(s);
                        d.hint(format!("did you mean `{s}`?"))
                    }
                    None => d.hint(format!("known keys here: {}", known.join(", "))),
                };
                out.push(d);
            }
        }
        if let Some(req) = schema.get("required").and_then(Value::as_array) {
            for r in req.iter().filter_map(Value::as_str) {
                if !entries.iter().any(|(k, _)| k.value == r) && !typo_for.contains(&r) {
                    out.push(
                        Diagnostic::new(loc, format!("{} lacks the key `{r}`", describe(path)))
                            .hint(format!(
                                "add `{r}:`{}",
                                props
                                    .and_then(|p| p.get(r))
                                    .and_then(|p| self.resolve(p).get("description"))
                                    .and_then(Value::as_str)
                                    .map(|d| format!(" ({})", first_sentence(d)))
                                    .unwrap_or_default()
                            )),
                    );
                }
            }
        }
    }

    fn walk_alternatives(
        &self,
        node: &Sp<Yaml>,
        branches: &'s [Value],
        path: &str,
        out: &mut Vec<Diagnostic>,
    ) {
        let resolved: Vec<&Value> = branches.iter().map(|b| self.resolve(b)).collect();
        // An enum written as a list of documented constants.
        let consts: Vec<&str> = resolved
            .iter()
            .filter_map(|b| b.get("const").and_then(Value::as_str))
            .collect();
        if consts.len() == resolved.len() {
            self.check_choice(node, &consts, path, out);
            return;
        }
        let mut best: Option<Vec<Diagnostic>> = None;
        for b in &resolved {
            if !shallow_matches(self, node, b) {
                continue;
            }
            let mut errs = Vec::new();
            self.walk(node, b, path, &mut errs);
            if errs.is_empty() {
                return;
            }
            if best.as_ref().is_none_or(|e| errs.len() < e.len()) {
                best = Some(errs);
            }
        }
        match best {
            Some(errs) => out.extend(errs),
            None => {
                let forms: Vec<String> = resolved.iter().map(|b| expected(b)).collect();
                out.push(
                    Diagnostic::new(
                        node.loc,
                        format!(
                            "{} must be {}, found {}",
                            describe(path),
                            forms.join(" or "),
                            node.kind()
                        ),
                    )
                    .hint(
                        resolved
                            .iter()
                            .map(|b| example_for(b))
                            .collect::<Vec<_>>()
                            .join("\nor: "),
                    ),
                )
            }
        }
    }

    fn check_choice(
        &self,
        node: &Sp<Yaml>,
        allowed: &[&str],
        path: &str,
        out: &mut Vec<Diagnostic>,
    ) {
        let text = match &node.value {
            Yaml::Str(s) => s.clone(),
            Yaml::Null => {
                // `null` only counts when the schema allows it; schemars lists it as a branch.
                out.push(Diagnostic::new(
                    node.loc,
                    format!("{} must be one of: {}", describe(path), allowed.join(", ")),
                ));
                return;
            }
            other => format!("{other:?}"),
        };
        if allowed.contains(&text.as_str()) {
            return;
        }
        let mut d = Diagnostic::new(
            node.loc,
            format!("unknown value `{text}` for {}", describe(path)),
        );
        d = match did_you_mean(&text, allowed) {
            Some(s) => d.hint(format!(
                "did you mean `{s}`? (one of: {})",
                allowed.join(", ")
            )),
            None => d.hint(format!("use one of: {}", allowed.join(", "))),
        };
        out.push(d);
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn describe(path: &str) -> String {
    if path.is_empty() {
        "the topology".to_owned()
    } else {
        format!("`{path}`")
    }
}

fn types(schema: &Value) -> Vec<&str> {
    match schema.get("type") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn kind_is(node: &Yaml, ty: &str) -> bool {
    match ty {
        "null" => matches!(node, Yaml::Null),
        "boolean" => matches!(node, Yaml::Bool(_)),
        "integer" => matches!(node, Yaml::Int(_)),
        "number" => matches!(node, Yaml::Int(_) | Yaml::Float(_)),
        // YAML scalars such as `0` or `1.5` are fine where text is expected.
        "string" => matches!(
            node,
            Yaml::Str(_) | Yaml::Int(_) | Yaml::Float(_) | Yaml::Bool(_)
        ),
        "array" => matches!(node, Yaml::Seq(_)),
        "object" => matches!(node, Yaml::Map(_)),
        _ => true,
    }
}

fn type_matches(node: &Sp<Yaml>, schema: &Value) -> bool {
    let t = types(schema);
    t.is_empty() || t.iter().any(|ty| kind_is(&node.value, ty))
}

/// Whether a branch of an alternative is about this kind of node at all.
fn shallow_matches(w: &Walker<'_>, node: &Sp<Yaml>, schema: &Value) -> bool {
    let schema = w.resolve(schema);
    if schema.get("const").is_some() || schema.get("enum").is_some() {
        return matches!(node.value, Yaml::Str(_));
    }
    if let Some(branches) = schema
        .get("anyOf")
        .or_else(|| schema.get("oneOf"))
        .and_then(Value::as_array)
    {
        return branches.iter().any(|b| shallow_matches(w, node, b));
    }
    type_matches(node, schema)
}

fn expected(schema: &Value) -> String {
    if schema.get("const").is_some() || schema.get("enum").is_some() {
        return "one of the listed words".into();
    }
    let t = types(schema);
    let words: Vec<&str> = t
        .iter()
        .filter(|t| **t != "null" || types(schema).len() == 1)
        .map(|t| match *t {
            "null" => "empty",
            "boolean" => "true or false",
            "integer" => "a whole number",
            "number" => "a number",
            "string" => "a string",
            "array" => "a list",
            "object" => "a mapping",
            _ => "a value",
        })
        .collect();
    if words.is_empty() {
        "a value".into()
    } else {
        words.join(" or ")
    }
}

fn example_for(schema: &Value) -> String {
    match types(schema).first().copied() {
        Some("array") => "write a list, one `- item` per line, or `[a, b]`".into(),
        Some("object") => "write a mapping: `key: value` lines indented under this key".into(),
        Some("integer") => "write a whole number such as `1500`".into(),
        Some("number") => "write a number such as `0.5`".into(),
        Some("boolean") => "write `true` or `false`".into(),
        Some("string") => "write a plain value such as `lan1`".into(),
        _ => "see `v6lab schema` or docs/topology.md for the expected form".into(),
    }
}

fn first_sentence(s: &str) -> &str {
    s.split_once(". ")
        .map(|(a, _)| a)
        .unwrap_or(s)
        .trim_end_matches('.')
}

/// The closest known word, if it is close enough to be a typo.
pub fn did_you_mean<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    known
        .iter()
        .map(|k| {
            (
                strsim::osa_distance(word, k),
                strsim::jaro_winkler(word, k),
                *k,
            )
        })
        .filter(|(d, jw, _)| *d <= limit || *jw > 0.88)
        .min_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)))
        .map(|(_, _, k)| k)
}
