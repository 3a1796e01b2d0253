//! Graphite-safe names: what a leakwatch series is called once it reaches StatsD and Graphite.
//!
//! Graphite stores every dot-separated component as a directory and the last one as a whisper
//! file, and StatsD's line format reserves `:`, `|`, `@` and `#`. So:
//!
//! * dots keep their meaning (hierarchy): `presence.Watch` stays `presence.Watch`;
//! * every character other than `A-Z a-z 0-9 _ -` becomes `_` (one `_` per character, so
//!   `Watch<u32>` becomes `Watch_u32_` and `é` becomes `_`);
//! * empty components are dropped (`a..b.` becomes `a.b`); a name with no component left
//!   becomes `_`.
//!
//! A single component (the instance name, a label value folded into a name) has its dots
//! replaced as well, so `web-1.example.com` becomes one component `web-1_example_com`.

/// Whether `c` survives sanitising unchanged.
fn keep(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// Sanitises a dot-separated metric name for StatsD and Graphite: dots are hierarchy and
/// stay; every other character outside `A-Z a-z 0-9 _ -` becomes `_` (one per character);
/// empty components are dropped; a name with no component left becomes `_`.
///
/// ```
/// use leakwatch::statsd::sanitize_name;
/// assert_eq!(sanitize_name("live.presence.Watch"), "live.presence.Watch");
/// assert_eq!(sanitize_name("live.Vec<u8>..x y."), "live.Vec_u8_.x_y");
/// assert_eq!(sanitize_name("..."), "_");
/// ```
pub fn sanitize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    push_sanitized_name(&mut out, name);
    if out.is_empty() {
        out.push('_');
    }
    out
}

/// Appends the sanitised `name` to `out`, separated from what `out` holds by a dot when both
/// are non-empty. Appends nothing for a name without components.
pub(crate) fn push_sanitized_name(out: &mut String, name: &str) {
    for component in name.split('.').filter(|c| !c.is_empty()) {
        if !out.is_empty() && !out.ends_with('.') {
            out.push('.');
        }
        out.extend(component.chars().map(|c| if keep(c) { c } else { '_' }));
    }
}

/// Sanitises one name component: like [`sanitize_name`], but dots become `_` too.
///
/// ```
/// assert_eq!(leakwatch::statsd::sanitize_component("web-1.example.com"), "web-1_example_com");
/// ```
pub fn sanitize_component(component: &str) -> String {
    let s: String = component
        .trim()
        .chars()
        .map(|c| if keep(c) { c } else { '_' })
        .collect();
    if s.is_empty() { "_".to_owned() } else { s }
}

/// Sanitises a DogStatsD tag key or value. StatsD turns tags into Graphite tags
/// (`name;key=value`), which reserve `;`, `=`, `~` and `!`, and DogStatsD reserves `,`, `|`,
/// `:` and `#`: keep `A-Z a-z 0-9 _ - . /`, everything else becomes `_`.
pub(crate) fn sanitize_tag(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() { "_".to_owned() } else { s }
}

/// This machine's host name, from `/proc/sys/kernel/hostname` or `/etc/hostname`, not yet
/// sanitised. `None` if neither can be read or both are empty.
pub fn host_name() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_owned())
        .find(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keep_hierarchy_and_lose_everything_else() {
        assert_eq!(
            sanitize_name("count.http.status.409"),
            "count.http.status.409"
        );
        assert_eq!(sanitize_name("a b:c|d@e#f"), "a_b_c_d_e_f");
        assert_eq!(sanitize_name(".a..b."), "a.b");
        assert_eq!(sanitize_name(""), "_");
        assert_eq!(sanitize_name("naïve"), "na_ve");
        let mut s = String::from("p.");
        push_sanitized_name(&mut s, "x..y");
        assert_eq!(s, "p.x.y");
        let mut s = String::from("p");
        push_sanitized_name(&mut s, "x");
        assert_eq!(s, "p.x");
    }

    #[test]
    fn components_and_tags() {
        assert_eq!(sanitize_component(" web-1.local\n"), "web-1_local");
        assert_eq!(sanitize_component(""), "_");
        assert_eq!(sanitize_tag("a:b,c|d#e;f=g"), "a_b_c_d_e_f_g");
        assert_eq!(sanitize_tag("v1.2/x"), "v1.2/x");
    }
}
