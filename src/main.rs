//! The `mudrock` binary; everything lives in the library.

fn main() {
    std::process::exit(mudrock::cli::main());
}
