//! Mutations of a model's config JSON, as a hostile checkpoint would carry it: sizes and
//! widths scaled up to overflow, depths (list lengths) blown up, negative and huge numbers,
//! values of the wrong type, missing and unknown keys, broken JSON.

/// Replacement values: negative, huge, fractional, wrong types.
const VALUES: &[&str] = &[
    "0",
    "1",
    "-1",
    "-9223372036854775808",
    "4294967296",
    "999999999",
    "18446744073709551615",
    "18446744073709551616",
    "1e30",
    "0.5",
    "NaN",
    "null",
    "true",
    "\"8\"",
    "[]",
    "[-1]",
    "[[1]]",
    "{}",
    "{\"a\":1}",
];

/// `(start, end)` of every run of ASCII digits in `text`.
pub(crate) fn digit_runs(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut runs = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            let s = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            runs.push((s, i));
        } else {
            i += 1;
        }
    }
    runs
}

/// `(start, end)` (end exclusive, after `]`) of every innermost `[...]` in `text`.
fn arrays(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut open = None;
    for (i, c) in text.char_indices() {
        match c {
            '[' => open = Some(i),
            ']' => {
                if let Some(s) = open.take() {
                    out.push((s, i + 1));
                }
            }
            _ => {}
        }
    }
    out
}

/// `(start, end)` of every value that follows a `"key":`, up to the next `,` or `}` at the
/// same depth.
fn values(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    for (i, _) in text.match_indices("\":") {
        let s = i + 2;
        let mut depth = 0i32;
        let mut e = s;
        while e < bytes.len() {
            match bytes[e] {
                b'[' | b'{' => depth += 1,
                b']' | b'}' if depth > 0 => depth -= 1,
                b',' | b'}' if depth == 0 => break,
                _ => {}
            }
            e += 1;
        }
        out.push((s, e));
    }
    out
}

fn splice(text: &str, (s, e): (usize, usize), new: &str) -> String {
    format!("{}{new}{}", &text[..s], &text[e..])
}

/// One mutation of `json`; `below(n)` draws a number in `0..n` (`0` for `n == 0`).
pub fn mutate_config(json: &str, below: &mut dyn FnMut(usize) -> usize) -> String {
    let pick = |items: &[(usize, usize)], below: &mut dyn FnMut(usize) -> usize| {
        items.get(below(items.len())).copied()
    };
    match below(9) {
        // A size or width replaced by a hostile number or a value of another type.
        0 | 1 => match pick(&digit_runs(json), below) {
            Some(run) => splice(json, run, VALUES[below(VALUES.len())]),
            None => json.to_string(),
        },
        // A size or width scaled by 10^k (up to far past overflow).
        2 => match pick(&digit_runs(json), below) {
            Some(run) => {
                let zeros = "0".repeat(1 + below(24));
                splice(json, run, &format!("{}{zeros}", &json[run.0..run.1]))
            }
            None => json.to_string(),
        },
        // Every number the same (huge or tiny): widths and depths together.
        3 => {
            let value = ["0", "1", "3", "65536", "4294967297", "99999999999"][below(6)];
            let mut out = json.to_string();
            for run in digit_runs(json).into_iter().rev() {
                out = splice(&out, run, value);
            }
            out
        }
        // A list made long (depth) or empty.
        4 | 5 => match pick(&arrays(json), below) {
            Some((s, e)) => {
                let inner = &json[s + 1..e - 1];
                let new = match below(3) {
                    0 => "[]".to_string(),
                    _ if inner.is_empty() => "[1]".to_string(),
                    _ => format!("[{}]", vec![inner; 1 + below(200)].join(",")),
                };
                splice(json, (s, e), &new)
            }
            None => json.to_string(),
        },
        // A whole value of the wrong type.
        6 => match pick(&values(json), below) {
            Some(v) => splice(json, v, VALUES[below(VALUES.len())]),
            None => json.to_string(),
        },
        // A key dropped (the value removed with it) or an unknown key added.
        7 => match pick(&values(json), below) {
            Some((s, e)) if below(2) == 0 => {
                let key_start = json[..s - 2].rfind('"').unwrap_or(0);
                let end = if json[e..].starts_with(',') { e + 1 } else { e };
                format!("{}{}", &json[..key_start], &json[end..])
            }
            _ => json.replacen('{', "{\"unknown_field\":[1,2],", 1),
        },
        // Broken JSON: truncated, or garbage appended.
        _ => {
            let mut cut = below(json.len().max(1));
            while !json.is_char_boundary(cut) {
                cut -= 1;
            }
            let tail = ["", "}", "]]]", "\u{0}", "{{{{"][below(5)];
            format!("{}{tail}", &json[..cut])
        }
    }
}
