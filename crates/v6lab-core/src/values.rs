//! Parsers for the small value languages of topologies: durations, sizes, names, modes.

/// Parses `90s`, `45m`, `3h`, `2d`, `1h30m` into seconds.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return Err(format!("unknown unit `{c}`")),
        };
        let n: u64 = num
            .parse()
            .map_err(|_| format!("a number must come before `{c}`"))?;
        total = total.saturating_add(n.saturating_mul(unit));
        num.clear();
    }
    if !num.is_empty() {
        return Err("a unit (s, m, h or d) must follow the number".into());
    }
    Ok(total)
}

/// Parses `256MiB`, `1GiB`, `512M`, `64k` into bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| "a size starts with a number".to_string())?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("unknown size unit `{other}`")),
    };
    Ok(n.saturating_mul(mult))
}

/// DNS-safe label: lowercase letters, digits and `-`, not starting or ending with `-`.
pub fn dns_label_problem(s: &str, max: usize) -> Option<String> {
    if s.is_empty() {
        return Some("it is empty".into());
    }
    if s.len() > max {
        return Some(format!(
            "it is {} characters long; the limit is {max}",
            s.len()
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Some(format!("`{c}` is not allowed (use a-z, 0-9 and -)"));
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Some("it may not start or end with `-`".into());
    }
    None
}

/// A DNS-safe rewrite of `s` for hints.
pub fn dns_safe(s: &str) -> String {
    let mut out: String = s
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    while out.contains("--") {
        out = out.replace("--", "-");
    }
    out.trim_matches('-').to_owned()
}

/// Linux interface names: 1 to 15 bytes, no `/`, `:`, whitespace; not `.` or `..`.
pub fn ifname_problem(s: &str) -> Option<String> {
    if s.is_empty() {
        return Some("it is empty".into());
    }
    if s.len() > 15 {
        return Some(format!(
            "it is {} bytes long; Linux allows at most 15",
            s.len()
        ));
    }
    if s == "." || s == ".." || s == "lo" {
        return Some(format!("`{s}` is reserved"));
    }
    if let Some(c) = s
        .chars()
        .find(|c| c.is_whitespace() || *c == '/' || *c == ':' || !c.is_ascii())
    {
        return Some(format!("`{c}` is not allowed in an interface name"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("3h"), Ok(10800));
        assert_eq!(parse_duration("1h30m"), Ok(5400));
        assert_eq!(parse_duration("45s"), Ok(45));
        assert!(parse_duration("3").is_err());
        assert!(parse_duration("3x").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn names() {
        assert!(dns_label_problem("ipv6-basics", 40).is_none());
        assert!(dns_label_problem("IPv6", 40).is_some());
        assert!(dns_label_problem("-a", 40).is_some());
        assert_eq!(dns_safe("My Lab_1"), "my-lab-1");
        assert!(ifname_problem("eth1").is_none());
        assert!(ifname_problem("averyveryverylongname").is_some());
        assert!(ifname_problem("eth 1").is_some());
    }
}
