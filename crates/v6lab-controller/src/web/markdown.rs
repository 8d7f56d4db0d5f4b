//! Exercise instructions: Markdown rendered to HTML on the server. Raw HTML in the source is
//! shown as text (escaped), and links or images with a scheme other than http, https or mailto
//! (`javascript:`, `data:`...) lose their target: instructions can never run code in a page.

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, html};

/// Whether a link target is harmless: relative, an anchor, or http(s)/mailto.
fn safe_url(url: &str) -> bool {
    let u = url.trim_start();
    match u.find([':', '/', '?', '#']) {
        Some(i) if u.as_bytes()[i] == b':' => {
            let scheme = u[..i].to_ascii_lowercase();
            matches!(scheme.as_str(), "http" | "https" | "mailto")
        }
        _ => true,
    }
}

pub fn render(src: &str) -> String {
    let opts = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
    let events = Parser::new_ext(src, opts).map(|ev| match ev {
        Event::Html(h) | Event::InlineHtml(h) => Event::Text(h),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) if !safe_url(&dest_url) => Event::Start(Tag::Link {
            link_type,
            dest_url: CowStr::Borrowed("#"),
            title,
            id,
        }),
        Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) if !safe_url(&dest_url) => Event::Start(Tag::Image {
            link_type,
            dest_url: CowStr::Borrowed(""),
            title,
            id,
        }),
        e => e,
    });
    let mut out = String::new();
    html::push_html(&mut out, events);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_markdown() {
        let h = render("Start `radvd` on **r1**:\n\n```\nradvd -C /etc/v6lab/radvd.conf\n```\n");
        assert!(h.contains("<code>radvd</code>"), "{h}");
        assert!(h.contains("<strong>r1</strong>"), "{h}");
        assert!(
            h.contains("<pre><code>radvd -C /etc/v6lab/radvd.conf"),
            "{h}"
        );
    }

    #[test]
    fn raw_html_is_escaped() {
        let h = render("hi <script>alert(1)</script>\n\n<img src=x onerror=alert(1)>\n");
        assert!(!h.contains("<script"), "{h}");
        assert!(!h.contains("<img"), "{h}");
        assert!(h.contains("&lt;script&gt;"), "{h}");
    }

    #[test]
    fn dangerous_links_lose_their_target() {
        let h = render(
            "[a](javascript:alert(1)) [b](JavaScript:x) [c](https://example.org/) [d](#x) ![e](data:image/png;base64,AA)",
        );
        assert!(!h.to_lowercase().contains("javascript:"), "{h}");
        assert!(!h.contains("data:"), "{h}");
        assert!(h.contains("href=\"https://example.org/\""), "{h}");
        assert!(h.contains("href=\"#x\""), "{h}");
    }
}
