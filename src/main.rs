use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = privacy_portal::cli::Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(privacy_portal::cli::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            // One line, no backtrace: operators read this.
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}
