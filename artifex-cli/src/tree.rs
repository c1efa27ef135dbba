//! Entries as a tree of `.`-separated segments, ordered naturally (`encoder.2` before
//! `encoder.10`).

use std::cmp::Ordering;

/// Compares two `.`-joined paths segment by segment, numbers by value.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a.split('.'), b.split('.'));
    loop {
        match (x.next(), y.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(p), Some(q)) => {
                let ord = match (p.parse::<u64>(), q.parse::<u64>()) {
                    (Ok(m), Ok(n)) => m.cmp(&n),
                    (Ok(_), Err(_)) => Ordering::Less,
                    (Err(_), Ok(_)) => Ordering::Greater,
                    _ => p.cmp(q),
                };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
        }
    }
}

/// One printed line of the tree: a group header (`leaf` is `None`) or an entry.
#[derive(Debug, PartialEq)]
pub struct Line<'a> {
    /// Nesting depth.
    pub depth: usize,
    /// The segment shown.
    pub name: &'a str,
    /// The index of the entry, for entry lines.
    pub entry: Option<usize>,
}

/// The tree lines of `paths` (already in natural order).
pub fn lines<'a>(paths: &[&'a str]) -> Vec<Line<'a>> {
    let mut out = Vec::new();
    let mut prev: Vec<&str> = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        let segs: Vec<&str> = path.split('.').collect();
        let (groups, leaf) = segs.split_at(segs.len() - 1);
        let common = prev.iter().zip(groups).take_while(|(a, b)| a == b).count();
        for (depth, name) in groups.iter().enumerate().skip(common) {
            out.push(Line {
                depth,
                name,
                entry: None,
            });
        }
        out.push(Line {
            depth: groups.len(),
            name: leaf[0],
            entry: Some(i),
        });
        prev = groups.to_vec();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_sort_by_value_and_groups_print_once() {
        let mut paths = vec!["enc.10.b", "enc.2.a", "enc.2.b", "head", "enc.10.a"];
        paths.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            paths,
            ["enc.2.a", "enc.2.b", "enc.10.a", "enc.10.b", "head"]
        );
        let l = lines(&paths);
        let shown: Vec<(usize, &str)> = l.iter().map(|l| (l.depth, l.name)).collect();
        assert_eq!(
            shown,
            [
                (0, "enc"),
                (1, "2"),
                (2, "a"),
                (2, "b"),
                (1, "10"),
                (2, "a"),
                (2, "b"),
                (0, "head")
            ]
        );
    }
}
