//! The text menus of the gateway (pure): rendering, choosing, and a small line editor for the
//! bytes a client types.

/// One menu entry: its name and a short description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub name: String,
    pub about: String,
}

/// The menu as text (`\n` line ends; the caller converts for a terminal).
pub fn render(title: &str, items: &[Item], what: &str) -> String {
    let width = items.iter().map(|i| i.name.len()).max().unwrap_or(0);
    let num = items.len().to_string().len();
    let mut s = format!("\n{title}\n");
    for (i, item) in items.iter().enumerate() {
        s.push_str(&format!(
            "  {:>num$}  {:<width$}  {}\n",
            i + 1,
            item.name,
            item.about
        ));
    }
    s.push_str(&format!("{what} (number or name; Ctrl-D leaves): "));
    s
}

/// The entry a typed answer picks: its number (from 1) or its exact name.
pub fn choose(answer: &str, items: &[Item]) -> Option<usize> {
    let a = answer.trim();
    if let Ok(n) = a.parse::<usize>() {
        return (1..=items.len()).contains(&n).then(|| n - 1);
    }
    items.iter().position(|i| i.name == a)
}

/// What the line editor saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// Enter: the line typed.
    Line(String),
    /// Ctrl-D on an empty line.
    Leave,
    /// Ctrl-C: the line is dropped.
    Interrupt,
}

/// A line editor over raw terminal bytes: printable ASCII, backspace, Enter (`\r`, `\n` or
/// `\r\n`), Ctrl-C, Ctrl-D; escape sequences (arrow keys) are skipped.
#[derive(Debug, Default)]
pub struct LineEditor {
    line: String,
    /// Inside an escape sequence: 1 after ESC, 2 after `ESC [` or `ESC O`.
    escape: u8,
    /// The previous Enter was `\r`, so a `\n` right after it belongs to it.
    after_cr: bool,
}

/// The longest line kept.
const MAX_LINE: usize = 128;

impl LineEditor {
    /// Feeds bytes; returns the event that ended a line (if any) and how many bytes were used
    /// (the rest belongs to whatever comes next). `echo` receives what to show on a terminal.
    pub fn feed(&mut self, bytes: &[u8], echo: &mut Vec<u8>) -> (Option<Edit>, usize) {
        for (i, &b) in bytes.iter().enumerate() {
            let after_cr = std::mem::take(&mut self.after_cr);
            if self.escape == 1 {
                self.escape = if b == b'[' || b == b'O' { 2 } else { 0 };
                continue;
            }
            if self.escape == 2 {
                if (0x40..=0x7e).contains(&b) {
                    self.escape = 0;
                }
                continue;
            }
            match b {
                b'\n' if after_cr => {}
                b'\r' | b'\n' => {
                    self.after_cr = b == b'\r';
                    echo.extend_from_slice(b"\r\n");
                    return (Some(Edit::Line(std::mem::take(&mut self.line))), i + 1);
                }
                0x04 if self.line.is_empty() => return (Some(Edit::Leave), i + 1),
                0x03 => {
                    self.line.clear();
                    echo.extend_from_slice(b"^C\r\n");
                    return (Some(Edit::Interrupt), i + 1);
                }
                0x7f | 0x08 if self.line.pop().is_some() => {
                    echo.extend_from_slice(b"\x08 \x08");
                }
                0x1b => self.escape = 1,
                0x20..=0x7e if self.line.len() < MAX_LINE => {
                    self.line.push(b as char);
                    echo.push(b);
                }
                _ => {}
            }
        }
        (None, bytes.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items() -> Vec<Item> {
        ["r1", "h1", "h2"]
            .iter()
            .map(|n| Item {
                name: n.to_string(),
                about: "host".into(),
            })
            .collect()
    }

    #[test]
    fn menu_lists_numbers_names_and_roles() {
        let m = render("Lab x", &items(), "Node");
        assert!(m.contains("  1  r1  host\n"), "{m}");
        assert!(m.contains("  3  h2  host\n"), "{m}");
        assert!(m.ends_with("Node (number or name; Ctrl-D leaves): "));
    }

    #[test]
    fn answers_pick_by_number_or_name() {
        let it = items();
        assert_eq!(choose("1", &it), Some(0));
        assert_eq!(choose(" 3 ", &it), Some(2));
        assert_eq!(choose("h1", &it), Some(1));
        assert_eq!(choose("0", &it), None);
        assert_eq!(choose("4", &it), None);
        assert_eq!(choose("x", &it), None);
        assert_eq!(choose("", &it), None);
    }

    #[test]
    fn line_editor_handles_terminal_bytes() {
        let mut e = LineEditor::default();
        let mut echo = Vec::new();
        // Typing, a backspace, an arrow key, Enter; the rest is left for the next reader.
        let input = b"h2\x7f1\x1b[A\rexit\r";
        let (ev, used) = e.feed(input, &mut echo);
        assert_eq!(ev, Some(Edit::Line("h1".into())));
        assert_eq!(&input[used..], b"exit\r");
        assert_eq!(echo, b"h2\x08 \x081\r\n");
        // `\r\n` is one Enter.
        let (ev, used) = e.feed(b"\n2\n", &mut echo);
        assert_eq!((ev, used), (Some(Edit::Line("2".into())), 3));
        // Ctrl-D on an empty line leaves; inside a line it does nothing.
        assert_eq!(e.feed(b"\x04", &mut echo).0, Some(Edit::Leave));
        assert_eq!(e.feed(b"a\x04", &mut echo), (None, 2));
        assert_eq!(e.feed(b"\x03", &mut echo).0, Some(Edit::Interrupt));
        assert_eq!(e.feed(b"\n", &mut echo).0, Some(Edit::Line(String::new())));
    }
}
