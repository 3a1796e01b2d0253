//! The page: one HTML document with the project's own script and styles inlined, built once
//! per dashboard.

use serde::Serialize;

use crate::group::Group;

const HTML: &str = include_str!("../assets/dashboard.html");
const SCRIPT: &str = include_str!("../assets/dashboard.js");
const STYLE: &str = include_str!("../assets/dashboard.css");

/// The page's Content-Security-Policy: the browser itself refuses to load anything from
/// outside the service (no scripts, styles, fonts or images from elsewhere) and lets the
/// script fetch only from the page's own origin.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; \
     script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; \
     connect-src 'self'; base-uri 'none'; form-action 'none'";

/// What the script reads from the page (`<script type="application/json">`).
#[derive(Serialize)]
pub(crate) struct PageConfig<'a> {
    pub(crate) title: &'a str,
    /// `null`: the page's own path + `/data`.
    pub(crate) data_url: Option<&'a str>,
    pub(crate) refresh_ms: u64,
    pub(crate) discover_ms: u64,
    pub(crate) groups: &'a [Group],
}

/// The complete HTML document.
pub(crate) fn render(config: &PageConfig<'_>) -> String {
    let json = serde_json::to_string(config).expect("page config serialises");
    // Inside <script> only `</` could end the element early; `<` as \u003c keeps the JSON
    // equal and the HTML parser blind to it.
    let json = json.replace('<', "\\u003c");
    let mut out = String::with_capacity(HTML.len() + SCRIPT.len() + STYLE.len() + json.len());
    // One pass over the template: the inserted parts are never searched for placeholders.
    let mut rest = HTML;
    while let Some(start) = rest.find("{{") {
        let end = start + rest[start..].find("}}").expect("closed placeholder") + 2;
        out.push_str(&rest[..start]);
        match &rest[start..end] {
            "{{TITLE}}" => out.push_str(&escape_html(config.title)),
            "{{STYLE}}" => out.push_str(STYLE),
            "{{SCRIPT}}" => out.push_str(SCRIPT),
            "{{CONFIG}}" => out.push_str(&json),
            other => panic!("unknown placeholder {other} in dashboard.html"),
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(title: &str) -> String {
        render(&PageConfig {
            title,
            data_url: None,
            refresh_ms: 1000,
            discover_ms: 5000,
            groups: &Group::defaults(),
        })
    }

    #[test]
    fn inlines_script_style_and_config() {
        let html = page("leaks");
        assert!(html.contains(SCRIPT) && html.contains(STYLE));
        assert!(!html.contains("{{"), "every placeholder replaced");
        assert!(html.contains(r#""title":"Memory""#), "groups in the config");
    }

    #[test]
    fn title_cannot_break_out() {
        let html = page("</script><b>&");
        assert!(
            html.contains("&lt;/script&gt;&lt;b&gt;&amp;"),
            "escaped in <title>/<h1>"
        );
        assert!(
            html.contains(r#""title":"\u003c/script>\u003cb>&""#),
            "escaped in the JSON config"
        );
    }

    #[test]
    fn refers_to_nothing_outside_the_service() {
        // The page's own files: no absolute or protocol-relative URL, no external element.
        for (name, text) in [("html", HTML), ("js", SCRIPT), ("css", STYLE)] {
            for needle in [
                "http:", "https:", "//cdn", "@import", "url(", "src=", "href=\"/",
            ] {
                assert!(!text.contains(needle), "{name} contains {needle}");
            }
        }
    }
}
