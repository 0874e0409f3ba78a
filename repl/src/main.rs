//! The `slcp` binary: parses the command line and runs the part asked for.

mod bundled;
mod cli;
mod doctor;
mod launcher;
mod repl;
mod web;

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Parser;
use cli::{Cli, Command};
use slcp_config::Loaded;

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
    let name = match &cli.command {
        Some(Command::Discovery { .. }) => "discovery",
        Some(Command::Client) => "client",
        _ => "slcp",
    };
    slcp_core::logger::init(name, cli.verbose);
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
        Some(Command::Discovery { share }) => {
            let Loaded { config: c, .. } = cli.load_config()?;
            let opts = slcp_discovery::Options {
                whoisport: c.whoisport,
                expiry: c.expiry,
                share: *share,
                // The same targets the clients broadcast to: the discovery speaks for them.
                broadcast: slcp_core::net::broadcast_targets(
                    &c.broadcast
                        .iter()
                        .chain(&c.peers)
                        .copied()
                        .collect::<Vec<_>>(),
                    c.interfaces,
                    &c.interface,
                ),
                host_forms: c
                    .peer_forms
                    .iter()
                    .filter_map(|(k, f)| k.parse().ok().map(|ip| (ip, *f)))
                    .collect(),
            };
            slcp_discovery::run(opts, || {
                ready_line(&format!("discovery listening on UDP port {}", c.whoisport))
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Client) => {
            let Loaded {
                config: c, file, ..
            } = cli.load_config()?;
            if let Some((_, hello)) = launcher::attach(&c)? {
                let port = match hello {
                    slcp_core::ipc::ServerMsg::Hello { port, .. } => port,
                    _ => 0,
                };
                bail!(
                    "a client for {} already runs (port {port}); `{}` attaches to it",
                    c.handle,
                    cli.again("repl")
                );
            }
            let opts = slcp_core::client::Options {
                handle: c.handle.clone(),
                ports: (c.port.low, c.port.high),
                whoisport: c.whoisport,
                broadcast: c.broadcast.iter().chain(&c.peers).copied().collect(),
                peers: c.peers.clone(),
                interfaces: c.interfaces,
                interface: c.interface.clone(),
                heartbeat: c.heartbeat,
                expiry: c.expiry,
                who_wait: c.who_wait,
                backlog: c.backlog,
                auto_away: c.auto_away,
                runtime_file: launcher::runtime_file(&c),
                imagepath: c.imagepath.clone(),
                max_image_bytes: c.max_image_bytes,
                transfer_timeout: c.transfer_timeout,
                confirm_grace: c.confirm_grace,
                min_transfer_rate: c.min_transfer_rate,
                quota_per_sender: c.quota_per_sender,
                quota_total: c.quota_total,
                forms: c.forms,
                peer_forms: c.peer_forms.clone(),
                image_ports: c.image_ports.clone(),
                history: c
                    .history
                    .then(|| slcp_config::paths::history_file(c.handle.as_str())),
                history_days: c.history_days,
                notify: c.notify,
                downloadpath: c.downloadpath.clone(),
                max_file_bytes: c.max_file_bytes,
                max_send_rate: c.max_send_rate,
                encryption: c.encryption,
                keys: Some(slcp_config::paths::key_files(c.handle.as_str())),
            };
            let file = loaded_file(&cli, file);
            let setup = slcp_core::client::PluginSetup {
                dirs: plugin_dirs(&c),
                bundled: bundled::enabled(&c.bundled).0,
                config: c.values(),
                persist: Box::new(move |key, value| {
                    slcp_config::save_key(&file, key, value).map_err(|e| e.to_string())
                }),
            };
            slcp_core::client::run(opts, setup, |info| {
                ready_line(&format!(
                    "client {} on UDP/TCP port {} (IPC 127.0.0.1:{})",
                    c.handle, info.port, info.ipc_port
                ))
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Doctor) => {
            let Loaded { config: c, .. } = cli.load_config()?;
            let report = doctor::run(&c);
            print_stdout(&(report.lines.join("\n") + "\n"))?;
            Ok(if report.problems == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Some(Command::Completions { shell }) => {
            let mut cmd = <cli::Cli as clap::CommandFactory>::command();
            let mut out = Vec::new();
            clap_complete::generate(*shell, &mut cmd, "slcp", &mut out);
            print_stdout(&String::from_utf8_lossy(&out))?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Man) => {
            let cmd = <cli::Cli as clap::CommandFactory>::command();
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut out)?;
            print_stdout(&String::from_utf8_lossy(&out))?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Plugins) => {
            let Loaded { config: c, .. } = cli.load_config()?;
            let (on, _) = bundled::enabled(&c.bundled);
            let (found, failed) = slcp_core::plugin::scan(&plugin_dirs(&c), &on);
            let found: Vec<_> = found.iter().collect();
            let mut text = String::new();
            for l in slcp_core::plugin::report_lines(&found, &failed) {
                text.push_str(&l);
                text.push('\n');
            }
            print_stdout(&text)?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Repl) => {
            let Loaded { config: c, .. } = cli.load_config()?;
            let (client, hello) = launcher::attach(&c)?.with_context(|| {
                format!(
                    "no client runs for {}; start one with `slcp` (or `slcp client`)",
                    c.handle
                )
            })?;
            repl::run(client, hello, &c, &cli.again(""))
        }
        Some(Command::Web { no_open }) => {
            let Loaded { config: c, .. } = cli.load_config()?;
            web::run(&cli, &c, !*no_open)
        }
        None => {
            let Loaded { config: c, .. } = cli.load_config()?;
            let (client, hello) = launcher::ensure_running(&cli, &c)?;
            repl::run(client, hello, &c, &cli.again(""))
        }
    }
}

/// Where plugins are looked for: the configured folders, then the executable's own folder (so a
/// `cargo build` tree works with no setup).
fn plugin_dirs(c: &slcp_config::Config) -> Vec<std::path::PathBuf> {
    let mut dirs = c.plugin_dir.clone();
    if let Some(d) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|p| p.to_owned()))
        && !dirs.contains(&d)
    {
        dirs.push(d);
    }
    dirs
}

/// The config file settings are saved to: the one read, else `--config`, else the default path.
fn loaded_file(cli: &Cli, read: Option<std::path::PathBuf>) -> std::path::PathBuf {
    read.or_else(|| cli.config.clone())
        .or_else(slcp_config::paths::default_config_file)
        .unwrap_or_else(|| std::path::PathBuf::from("slcp.toml"))
}

/// The one line a part prints on stdout when it is ready (the launcher waits for it).
fn ready_line(s: &str) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{s}").and_then(|_| o.flush());
}

/// Writes to stdout; a closed pipe (`slcp config | head -1`) is a normal end, not an error.
fn print_stdout(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
