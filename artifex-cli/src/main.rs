//! `artifex`: see `artifex --help`.

fn main() {
    let mut out = std::io::stdout().lock();
    let code = artifex_cli::run(
        std::env::args_os().skip(1),
        &mut out,
        &mut std::io::stderr(),
    );
    std::process::exit(code);
}
