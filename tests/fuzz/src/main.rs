//! `wca-fuzz`: runs one fuzz target over mutants of its seed corpus (see
//! the crate docs and `tests/fuzz/README.md`).

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(wca_fuzz::cli::main(&args));
}
