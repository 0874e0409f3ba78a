//! The `slcp` binary: parses the command line and runs the part asked for.

mod cli;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            // One line, the cause chain joined: what went wrong and where.
            eprintln!("slcp: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Some(Command::Config { default }) => {
            // The default file needs no config, so a broken one does not hide it.
            let text = if *default {
                slcp_config::Config::default_file()
            } else {
                let loaded = cli.load_config()?;
                let mut s = match &loaded.file {
                    Some(f) => format!("# config file: {}\n", f.display()),
                    None => "# config file: none (built-in defaults)\n".to_string(),
                };
                s.push_str(&loaded.config.to_annotated_toml(&loaded.sources));
                s
            };
            print_stdout(&text)?;
            Ok(ExitCode::SUCCESS)
        }
        None => anyhow::bail!("the chat is not built yet"),
    }
}

/// Writes to stdout; a closed pipe (`slcp config | head -1`) is a normal end, not an error.
fn print_stdout(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
