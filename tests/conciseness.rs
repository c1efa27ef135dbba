//! Conciseness of each Rust port against the seed's Python class, counted two ways; the
//! Python figures are in tests/fixtures/seed_line_counts.json, made by
//! python/count_seed_lines.py.
//!
//! Lines: non-blank lines that are not comments (`//`, `///`, `//!`); in Python, not
//! comments and not docstrings.
//!
//! Tokens, so that code crammed into one line (or one attribute) is not rewarded:
//! - Rust (lexed here by `proc-macro2` from the item's text): every identifier (keywords
//!   included), every literal (a string is one token) and every operator, where `::`, `->`,
//!   `=>`, `==`, `!=`, `<=`, `>=`, `&&`, `||`, `..`, `..=`, `+=`, `-=`, `*=`, `/=` are one
//!   token each and any other punctuation character is one; a delimiter pair (`()`, `[]`,
//!   `{}`) is two. Comments and doc comments (`///`, which the lexer turns into
//!   `#[doc = ".."]`, so those attributes) are not counted; other attributes are.
//! - Python (Python's `tokenize`): every NAME, NUMBER, STRING and OP token (an operator as
//!   the tokenizer reads it: `->`, `**`, `==` are one), and NEWLINE, INDENT and DEDENT, the
//!   statement terminator and block delimiters of Python's grammar, as Rust's `;`, `{`, `}`
//!   are counted. Not counted: comments, NL (a line break inside brackets or on a blank
//!   line) and docstrings (a string that is a statement on its own).
//!
//! Targets: each class at most 1.3x the Python in lines and in tokens; all classes together
//! at most 1.0x in tokens (and 1.1x in lines). Exceptions, with their measured gap, are in
//! `OVER_TARGET`; the assertion then holds the class at its current ratio (+2%).
//!
//! `cargo test --release --test conciseness -- --nocapture` prints both tables.

use std::collections::BTreeMap;
use std::path::Path;

use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};

/// Each seed class: the files and items (`struct X`, `impl X`, `fn x`, ...) of its Rust port.
/// For the two seed layers that live in artifex-core with more API than the seed has
/// (`forward_t` overrides, `sigma()`, attention weights), the methods that do what the seed's
/// class does are counted. Library functions a port calls (`ops::linear`,
/// `spectral::normalize`, ...) are not, as the seed's calls into Flax are not.
const PORTS: &[(&str, &str, &[&str])] = &[
    (
        "CustomLinear",
        "artifex-models/src/custom_linear.rs",
        &["struct CustomLinear", "impl CustomLinear"],
    ),
    (
        "CustomVAE",
        "artifex-models/src/vae.rs artifex-models/src/stack.rs",
        &[
            "struct CustomVAE",
            "struct VaeOutput",
            "impl CustomVAE",
            "impl GenerativeModel for CustomVAE",
            "fn dense_stack",
        ],
    ),
    (
        "ResidualNetwork",
        "artifex-models/src/residual_network.rs",
        &[
            "type ResidualMlpBlock",
            "struct ResidualNetwork",
            "impl ResidualNetwork",
        ],
    ),
    (
        "MyCustomGenerativeModel",
        "artifex-models/src/integration.rs",
        &[
            "struct GenerativeConfig",
            "impl Default for GenerativeConfig",
            "struct MyCustomGenerativeModel",
            "impl GenerativeModel for MyCustomGenerativeModel",
        ],
    ),
    (
        "custom_vae_loss",
        "artifex-core/src/losses.rs",
        &["fn custom_vae_loss"],
    ),
    (
        "RegularizedLinear",
        "artifex-core/src/layers/regularized_linear.rs",
        &[
            "struct RegularizedLinear",
            "fn forward_t",
            "fn regularization_loss",
        ],
    ),
    (
        "MultiHeadAttention",
        "artifex-core/src/layers/attention.rs",
        &[
            "struct MultiHeadAttention",
            "fn forward",
            "fn forward_with_weights",
        ],
    ),
    (
        "ResidualBlock",
        "artifex-models/src/residual_block.rs",
        &["struct ResidualBlock", "impl ResidualBlock"],
    ),
    (
        "UNetEncoder",
        "artifex-models/src/unet.rs",
        &["type UNetBlock", "struct UNetEncoder", "impl UNetEncoder"],
    ),
    (
        "UNetDecoder",
        "artifex-models/src/unet.rs",
        &["struct UNetDecoder", "impl UNetDecoder"],
    ),
    (
        "DenseBlock",
        "artifex-models/src/dense_block.rs",
        &["type DenseLayer", "struct DenseBlock", "impl DenseBlock"],
    ),
    (
        "CustomGenerator",
        "artifex-models/src/gan.rs",
        &[
            "struct CustomGenerator",
            "impl CustomGenerator",
            "enum GeneratorLayer",
            "fn generator_layers",
        ],
    ),
    (
        "CustomDiscriminator",
        "artifex-models/src/gan.rs",
        &[
            "struct CustomDiscriminator",
            "fn dense",
            "impl CustomDiscriminator",
        ],
    ),
];

/// Classes over the 1.3x target: (class, line limit, token limit, why). A limit over 1.3 is
/// the measured ratio + 2%, so the test fails if the port grows; the gap to 1.3 is open work.
/// None today: every port is within 1.3x in lines and tokens.
const OVER_TARGET: &[(&str, f64, f64, &str)] = &[];

/// The total token ratio may not exceed this: the 1.0 target (measured 0.99, 4891 Rust tokens
/// against 4932 Python ones).
const TOTAL_TOKEN_LIMIT: f64 = 1.0;

/// The lines of one item: from its first attribute / doc line to its closing brace or `;`.
fn item_lines<'a>(source: &'a str, item: &str) -> Vec<&'a str> {
    let lines: Vec<&str> = source.lines().collect();
    let is_start = |l: &str| {
        let t = l
            .trim_start()
            .trim_start_matches("pub ")
            .trim_start_matches("pub(crate) ");
        t.starts_with(item) && t[item.len()..].starts_with([' ', '<', '(', '{', ';'])
    };
    let Some(start) = lines.iter().position(|l| is_start(l)) else {
        panic!("item `{item}` not found");
    };
    let mut first = start;
    while first > 0 && lines[first - 1].trim_start().starts_with(['#', '/']) {
        first -= 1;
    }
    let mut depth = 0i32;
    let mut opened = false;
    for (i, line) in lines.iter().enumerate().skip(start) {
        for c in line.chars() {
            match c {
                '{' | '(' | '[' => {
                    depth += 1;
                    opened = true;
                }
                '}' | ')' | ']' => depth -= 1,
                _ => {}
            }
        }
        if opened && depth == 0 || (!opened && line.trim_end().ends_with(';')) {
            return lines[first..=i].to_vec();
        }
    }
    panic!("item `{item}` does not end");
}

fn counted(lines: &[&str]) -> usize {
    lines
        .iter()
        .filter(|l| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with("//")
        })
        .count()
}

/// Operators of more than one character that count as one token.
const OPERATORS: &[&str] = &[
    "..=", "::", "->", "=>", "==", "!=", "<=", ">=", "&&", "||", "..", "+=", "-=", "*=", "/=",
];

/// The tokens of `lines` by the rule at the top of this file.
fn tokens(lines: &[&str]) -> usize {
    let stream: TokenStream = lines.join("\n").parse().expect("item lexes");
    count_stream(stream)
}

fn count_stream(stream: TokenStream) -> usize {
    let trees: Vec<TokenTree> = stream.into_iter().collect();
    let mut count = 0;
    let mut run = String::new();
    let mut i = 0;
    while i < trees.len() {
        match &trees[i] {
            TokenTree::Punct(p) if p.as_char() == '#' && is_doc(trees.get(i + 1)) => {
                i += 2;
                continue;
            }
            TokenTree::Punct(p) => {
                run.push(p.as_char());
                if p.spacing() == Spacing::Alone {
                    count += operators_in(&run);
                    run.clear();
                }
            }
            TokenTree::Ident(_) | TokenTree::Literal(_) => count += 1,
            TokenTree::Group(g) => {
                let delimiters = if g.delimiter() == Delimiter::None {
                    0
                } else {
                    2
                };
                count += delimiters + count_stream(g.stream());
            }
        }
        if !matches!(&trees[i], TokenTree::Punct(_)) && !run.is_empty() {
            count += operators_in(&run);
            run.clear();
        }
        i += 1;
    }
    count + operators_in(&run)
}

/// Whether `tree` is the `[doc = ".."]` of a doc comment.
fn is_doc(tree: Option<&TokenTree>) -> bool {
    matches!(tree, Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Bracket
        && matches!(g.stream().into_iter().next(), Some(TokenTree::Ident(i)) if i == "doc"))
}

/// Tokens in a run of adjacent punctuation: longest known operator first, else one character.
fn operators_in(mut run: &str) -> usize {
    let mut count = 0;
    while !run.is_empty() {
        let len = OPERATORS
            .iter()
            .find(|op| run.starts_with(**op))
            .map_or(1, |op| op.len());
        run = &run[len..];
        count += 1;
    }
    count
}

/// Ratio limits of one class: the 1.3x target, or a measured exception (see `OVER_TARGET`).
fn limit(class: &str, tokens: bool) -> f64 {
    OVER_TARGET.iter().find(|(c, ..)| *c == class).map_or(
        1.3,
        |(_, lines, toks, _)| if tokens { *toks } else { *lines },
    )
}

#[test]
fn every_port_is_about_as_short_as_the_python() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let counts: BTreeMap<String, BTreeMap<String, usize>> = serde_json::from_str(
        &std::fs::read_to_string(root.join("tests/fixtures/seed_line_counts.json"))
            .expect("counts"),
    )
    .expect("json");
    let (python_lines, python_tokens) = (&counts["lines"], &counts["tokens"]);
    let header = |what: &str| {
        format!(
            "| seed class | Python {what} | Rust {what} | ratio |\n| --- | ---: | ---: | ---: |\n"
        )
    };
    let (mut line_table, mut token_table) = (header("lines"), header("tokens"));
    let (mut py_lines, mut rs_lines, mut py_tokens, mut rs_tokens) = (0, 0, 0, 0);
    let mut too_long = Vec::new();
    let mut ported = Vec::new();
    for (class, files, items) in PORTS {
        let source: String = files
            .split(' ')
            .map(|f| std::fs::read_to_string(root.join(f)).expect("source"))
            .collect::<Vec<_>>()
            .join("\n");
        let bodies: Vec<Vec<&str>> = items.iter().map(|item| item_lines(&source, item)).collect();
        let rust_lines: usize = bodies.iter().map(|b| counted(b)).sum();
        let rust_tokens: usize = bodies.iter().map(|b| tokens(b)).sum();
        ported.push(*class);
        for (is_tokens, py, rust, table, py_total, rs_total) in [
            (
                false,
                python_lines[*class],
                rust_lines,
                &mut line_table,
                &mut py_lines,
                &mut rs_lines,
            ),
            (
                true,
                python_tokens[*class],
                rust_tokens,
                &mut token_table,
                &mut py_tokens,
                &mut rs_tokens,
            ),
        ] {
            let ratio = rust as f64 / py as f64;
            *table += &format!("| {class} | {py} | {rust} | {ratio:.2} |\n");
            *py_total += py;
            *rs_total += rust;
            let what = if is_tokens { "tokens" } else { "lines" };
            if ratio > limit(class, is_tokens) {
                too_long.push(format!(
                    "{class} {what}: {ratio:.2} > {:.2}",
                    limit(class, is_tokens)
                ));
            }
        }
    }
    let missing: Vec<&String> = python_lines
        .keys()
        .filter(|c| !ported.contains(&c.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "seed classes without a port in PORTS: {missing:?}"
    );
    let line_ratio = rs_lines as f64 / py_lines as f64;
    let token_ratio = rs_tokens as f64 / py_tokens as f64;
    line_table += &format!("| **total** | {py_lines} | {rs_lines} | {line_ratio:.2} |\n");
    token_table += &format!("| **total** | {py_tokens} | {rs_tokens} | {token_ratio:.2} |\n");
    let mut tables = format!("{line_table}\n{token_table}");
    for (class, lines, toks, why) in OVER_TARGET {
        tables +=
            &format!("\nover 1.3x (held at {lines:.2}x lines, {toks:.2}x tokens): {class}: {why}");
    }
    println!("{tables}");
    assert!(
        too_long.is_empty(),
        "ports over their limit: {too_long:?}\n{tables}"
    );
    assert!(
        line_ratio <= 1.1,
        "total line ratio {line_ratio:.2} over 1.1\n{tables}"
    );
    assert!(
        token_ratio <= TOTAL_TOKEN_LIMIT,
        "total token ratio {token_ratio:.2} over {TOTAL_TOKEN_LIMIT}\n{tables}"
    );
}
