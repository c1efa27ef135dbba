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

/// One state variable as the tables of `inspect` print it.
pub struct Row<'a> {
    /// `.`-joined state path.
    pub path: &'a str,
    /// Param, batch stat or rng state.
    pub kind: artifex_core::StateKind,
    /// Its shape.
    pub shape: &'a [usize],
    /// Its dtype, as printed.
    pub dtype: String,
    /// Its size in bytes.
    pub bytes: usize,
}

/// Prints `rows` (sorted by path) as an indented tree with kind, shape, dtype and size, and
/// returns per-kind totals `(variables, values, bytes)`.
pub fn print_rows(
    rows: &[Row<'_>],
    out: &mut impl std::io::Write,
) -> std::io::Result<std::collections::BTreeMap<artifex_core::StateKind, (usize, usize, usize)>> {
    let paths: Vec<&str> = rows.iter().map(|r| r.path).collect();
    let tree = lines(&paths);
    let width = tree
        .iter()
        .map(|l| 2 * l.depth + l.name.len())
        .max()
        .unwrap_or(0)
        .max(4);
    let dtype_width = rows.iter().map(|r| r.dtype.len()).max().unwrap_or(0).max(5);
    writeln!(
        out,
        "  {:width$}  {:<10}  {:<16}  {:<dtype_width$}  {:>10}",
        "path", "kind", "shape", "dtype", "bytes"
    )?;
    for line in &tree {
        let name = format!("{}{}", "  ".repeat(line.depth), line.name);
        match line.entry {
            None => writeln!(out, "  {name}")?,
            Some(idx) => {
                let r = &rows[idx];
                writeln!(
                    out,
                    "  {name:width$}  {:<10}  {:<16}  {:<dtype_width$}  {:>10}",
                    crate::inspect::kind_name(r.kind),
                    format!("{:?}", r.shape),
                    r.dtype,
                    crate::inspect::human(r.bytes)
                )?;
            }
        }
    }
    let mut totals = std::collections::BTreeMap::new();
    for r in rows {
        let t: &mut (usize, usize, usize) = totals.entry(r.kind).or_default();
        t.0 += 1;
        t.1 = t.1.saturating_add(r.shape.iter().product::<usize>());
        t.2 = t.2.saturating_add(r.bytes);
    }
    Ok(totals)
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
