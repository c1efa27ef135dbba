//! `artifex`: see `artifex --help`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut out = std::io::stdout().lock();
    let code = artifex_cli::run(&args, &mut out, &mut std::io::stderr());
    std::process::exit(code);
}
