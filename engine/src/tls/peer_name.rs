//! rsyslog's `x509/name` check (`permitted_peer`).
//!
//! Names are compared label by label (split on `.`), case-insensitively;
//! pattern and name must have the same number of labels, and a `*` (or `?`)
//! matches only inside one label. So `*.example.com` matches
//! `web.example.com` but neither `example.com` nor `a.b.example.com`, as in
//! rsyslog and syslog-ng's own host-name matching. rsyslog allows `*` only
//! at the start or end of a label; we allow it anywhere in a label, which
//! accepts every rsyslog pattern with the same meaning.

use super::glob::glob_match;

/// Does the permitted-peer `pattern` match `name` (a DNS SAN or the CN)?
pub(crate) fn name_matches(pattern: &str, name: &str) -> bool {
    // A fully-qualified trailing dot means the same name.
    let pattern = pattern
        .strip_suffix('.')
        .unwrap_or(pattern)
        .to_ascii_lowercase();
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    let pattern_labels: Vec<&str> = pattern.split('.').collect();
    let name_labels: Vec<&str> = name.split('.').collect();
    pattern_labels.len() == name_labels.len()
        && pattern_labels
            .iter()
            .zip(&name_labels)
            .all(|(p, n)| glob_match(p, n))
}

#[cfg(test)]
mod tests {
    use super::name_matches;

    #[test]
    fn wildcards_stay_inside_one_label() {
        let cases = [
            ("localhost", "localhost", true),
            ("LocalHost", "localhost", true),
            ("*.example.com", "web.example.com", true),
            ("*.example.com", "example.com", false),
            ("*.example.com", "a.b.example.com", false),
            ("web*.example.com", "web01.example.com", true),
            ("*01.example.com", "web01.example.com", true),
            ("*", "localhost", true),
            ("*", "a.b", false),
            ("host.example.com.", "host.example.com", true),
            ("other.example.com", "host.example.com", false),
        ];
        for (pattern, name, want) in cases {
            assert_eq!(name_matches(pattern, name), want, "{pattern:?} vs {name:?}");
        }
    }
}
