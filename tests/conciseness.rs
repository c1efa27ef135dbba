//! Lines of each Rust port against the seed's Python class (counts of the Python in
//! tests/fixtures/seed_line_counts.json, made by python/count_seed_lines.py). Counted: non-blank
//! lines that are not comments (`//`, `///`, `//!`) or, in Python, comments and docstrings.
//! Targets: each class at most 1.3x the Python, all of them together at most 1.1x.
//!
//! `cargo test --release --test conciseness -- --nocapture` prints the table.

use std::collections::BTreeMap;
use std::path::Path;

/// Each seed class: the files and items (`struct X`, `impl X`, `fn x`, ...) of its Rust port.
/// For the two seed layers that live in artifex-core with more API than the seed has
/// (`forward_t` overrides, `sigma()`, attention weights), the methods that do what the seed's
/// class does are counted.
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
            "fn effective_weight",
            "fn sigma_from",
        ],
    ),
    (
        "MultiHeadAttention",
        "artifex-core/src/layers/attention.rs",
        &[
            "struct MultiHeadAttention",
            "fn forward",
            "fn forward_with_weights",
            "fn expand_mask",
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
            "impl Module for GeneratorLayer",
        ],
    ),
    (
        "CustomDiscriminator",
        "artifex-models/src/gan.rs",
        &[
            "struct CustomDiscriminator",
            "fn dims_in",
            "fn dense",
            "impl CustomDiscriminator",
        ],
    ),
];

/// Known exceptions to the 1.3x target, with the reason (kept visible in the printed table).
const OVER_TARGET: &[(&str, &str)] = &[
    (
        "RegularizedLinear",
        "persistent power iteration (u as state, train/eval aware) instead of a per-call SVD",
    ),
    (
        "MultiHeadAttention",
        "validates input and mask shapes, accepts (b, q, k), (1, q, k) and (q, k) masks",
    ),
];

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

#[test]
fn every_port_is_about_as_short_as_the_python() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python: BTreeMap<String, usize> = serde_json::from_str(
        &std::fs::read_to_string(root.join("tests/fixtures/seed_line_counts.json"))
            .expect("counts"),
    )
    .expect("json");
    let mut table = String::from(
        "| seed class | Python lines | Rust lines | ratio |\n| --- | ---: | ---: | ---: |\n",
    );
    let (mut total_py, mut total_rs) = (0, 0);
    let mut too_long = Vec::new();
    let mut ported = Vec::new();
    for (class, files, items) in PORTS {
        let source: String = files
            .split(' ')
            .map(|f| std::fs::read_to_string(root.join(f)).expect("source"))
            .collect::<Vec<_>>()
            .join("\n");
        let rust: usize = items
            .iter()
            .map(|item| counted(&item_lines(&source, item)))
            .sum();
        let py = python[*class];
        ported.push(*class);
        let ratio = rust as f64 / py as f64;
        table += &format!("| {class} | {py} | {rust} | {ratio:.2} |\n");
        total_py += py;
        total_rs += rust;
        if ratio > 1.3 && !OVER_TARGET.iter().any(|(c, _)| c == class) {
            too_long.push(format!("{class}: {ratio:.2}"));
        }
    }
    let missing: Vec<&String> = python
        .keys()
        .filter(|c| !ported.contains(&c.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "seed classes without a port in PORTS: {missing:?}"
    );
    let ratio = total_rs as f64 / total_py as f64;
    table += &format!("| **total** | {total_py} | {total_rs} | {ratio:.2} |\n");
    for (class, why) in OVER_TARGET {
        table += &format!("\nover 1.3x by design: {class}: {why}");
    }
    println!("{table}");
    assert!(
        too_long.is_empty(),
        "ports over 1.3x: {too_long:?}\n{table}"
    );
    assert!(ratio <= 1.1, "total ratio {ratio:.2} over 1.1\n{table}");
}
