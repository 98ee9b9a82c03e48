//! Destination groups: the sources and destinations that share a fate.
//!
//! A writer blocks on a destination that fails (it retries in place, see
//! `writer/destination.rs`), so everything that writer drains waits too.
//! Sources linked by a shared destination must wait together (a message
//! counts as written once every destination of its source has it), but
//! sources with no destination in common need not. A group is one
//! connected component of the graph whose edges are "source feeds
//! destination" ([`super::Config::routes`]: a source with filters counts
//! every destination its messages may reach), and gets its own rings and
//! writers: a stuck destination pauses only the sources of its group.
//!
//! In the common case (every source feeds every destination) there is one
//! group and nothing changes.

/// One connected component: sources and destinations by config index, each
/// list ascending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationGroup {
    pub sources: Vec<usize>,
    pub destinations: Vec<usize>,
}

/// Union-find root of `x`, halving the path on the way.
fn root(parent: &mut [usize], mut x: usize) -> usize {
    while parent[x] != x {
        parent[x] = parent[parent[x]];
        x = parent[x];
    }
    x
}

/// The groups of `routes` (per source, the destinations it feeds) over
/// `destinations` destinations. Every source and every destination is in
/// exactly one group; a destination no source feeds is a group of its own
/// (still opened and retried, but holding up nobody). Groups are ordered by
/// their first destination, so the group of destination 0 is group 0;
/// groups without destinations (a source that feeds none) come last.
pub fn destination_groups(routes: &[Vec<usize>], destinations: usize) -> Vec<DestinationGroup> {
    let sources = routes.len();
    // Nodes: sources 0..S, then destinations S..S+D.
    let mut parent: Vec<usize> = (0..sources + destinations).collect();
    for (s, feeds) in routes.iter().enumerate() {
        for &d in feeds.iter().filter(|&&d| d < destinations) {
            let (a, b) = (root(&mut parent, s), root(&mut parent, sources + d));
            if a != b {
                parent[a.max(b)] = a.min(b);
            }
        }
    }
    let mut groups: Vec<DestinationGroup> = Vec::new();
    let mut group_of_root = vec![usize::MAX; sources + destinations];
    // Destinations first, in order: a group's place is its first destination's.
    for node in (sources..sources + destinations).chain(0..sources) {
        let r = root(&mut parent, node);
        if group_of_root[r] == usize::MAX {
            group_of_root[r] = groups.len();
            groups.push(DestinationGroup {
                sources: Vec::new(),
                destinations: Vec::new(),
            });
        }
        let g = &mut groups[group_of_root[r]];
        if node < sources {
            g.sources.push(node);
        } else {
            g.destinations.push(node - sources);
        }
    }
    for g in &mut groups {
        g.sources.sort_unstable();
    }
    groups
}

/// For each source, the index of its group in `groups`.
pub fn group_of_sources<'g>(
    groups: impl IntoIterator<Item = &'g DestinationGroup>,
    sources: usize,
) -> Vec<usize> {
    let mut of = vec![0; sources];
    for (g, group) in groups.into_iter().enumerate() {
        for &s in &group.sources {
            if let Some(slot) = of.get_mut(s) {
                *slot = g;
            }
        }
    }
    of
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(sources: &[usize], destinations: &[usize]) -> DestinationGroup {
        DestinationGroup {
            sources: sources.to_vec(),
            destinations: destinations.to_vec(),
        }
    }

    #[test]
    fn every_source_feeding_every_destination_is_one_group() {
        let g = destination_groups(&[vec![0, 1], vec![0, 1]], 2);
        assert_eq!(g, vec![group(&[0, 1], &[0, 1])]);
        assert_eq!(group_of_sources(&g, 2), vec![0, 0]);
    }

    #[test]
    fn sources_with_no_destination_in_common_are_two_groups() {
        // s0 -> {a}, s1 -> {b}
        let g = destination_groups(&[vec![0], vec![1]], 2);
        assert_eq!(g, vec![group(&[0], &[0]), group(&[1], &[1])]);
        assert_eq!(group_of_sources(&g, 2), vec![0, 1]);
    }

    #[test]
    fn a_shared_destination_joins_the_sources_into_one_group() {
        // s0 -> {a, b}, s1 -> {b}
        let g = destination_groups(&[vec![0, 1], vec![1]], 2);
        assert_eq!(g, vec![group(&[0, 1], &[0, 1])]);
        // Joined through a chain: s0 -> {a}, s1 -> {a, c}, s2 -> {c}; s3 -> {b}.
        let g = destination_groups(&[vec![0], vec![0, 2], vec![2], vec![1]], 3);
        assert_eq!(g, vec![group(&[0, 1, 2], &[0, 2]), group(&[3], &[1])]);
        assert_eq!(group_of_sources(&g, 4), vec![0, 0, 0, 1]);
    }

    #[test]
    fn groups_follow_their_first_destination_and_an_unfed_one_stands_alone() {
        // s0 -> {c}, s1 -> {a}; nobody feeds b.
        let g = destination_groups(&[vec![2], vec![0]], 3);
        assert_eq!(
            g,
            vec![group(&[1], &[0]), group(&[], &[1]), group(&[0], &[2])]
        );
        assert_eq!(group_of_sources(&g, 2), vec![2, 0]);
    }

    /// Filters only narrow what a source's route may reach, so a filtered
    /// source counts every destination of its route (Config::routes).
    #[test]
    fn a_routed_config_groups_by_every_destination_a_source_may_reach() {
        let text = "[[source]]\nname = \"x\"\nlisten = \"127.0.0.1:1\"\ntransport = \"tcp\"\n\
                    destinations = [\"auth\", \"rest\"]\n\
                    [[source]]\nname = \"y\"\nlisten = \"127.0.0.1:2\"\ntransport = \"tcp\"\n\
                    destinations = [\"rest\"]\n\
                    [[source]]\nname = \"z\"\nlisten = \"127.0.0.1:3\"\ntransport = \"tcp\"\n\
                    destinations = [\"other\"]\n\
                    [[destination]]\nname = \"auth\"\ntype = \"file\"\npath = \"a\"\n\
                    filter = { facility = \"auth\" }\nfinal = true\n\
                    [[destination]]\nname = \"rest\"\ntype = \"file\"\npath = \"r\"\nfallback = true\n\
                    [[destination]]\nname = \"other\"\ntype = \"file\"\npath = \"o\"\n";
        let c = super::super::Config::from_toml(
            text,
            std::path::Path::new("t"),
            std::path::Path::new("/tmp"),
        )
        .expect("config");
        assert_eq!(
            c.destination_groups(),
            vec![group(&[0, 1], &[0, 1]), group(&[2], &[2])]
        );
    }
}
