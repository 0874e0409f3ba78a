//! The command line: global options every part shares, and the subcommands.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use slcp_config::{Config, ConfigError, Loaded, Overrides};

/// What `slcp -h` and `slcp --help` both say first.
const ABOUT: &str = "slcp: serverless chat for a local network.

With no subcommand, slcp makes sure this host's discovery service and your client run (starting them in the background when they do not) and opens the chat prompt. When standard input is not a terminal, the lines read from it are run as commands, one after the other.";

/// The command line of `slcp`.
#[derive(Debug, Parser)]
#[command(
    name = "slcp",
    version,
    about = ABOUT,
    long_about = None,
    propagate_version = true
)]
pub struct Cli {
    /// Read this config file instead of the default one
    #[arg(long, global = true, value_name = "FILE", env = "SLCP_CONFIG")]
    pub config: Option<PathBuf>,

    /// Your handle (overrides the config key `handle`)
    #[arg(long, global = true, value_name = "NAME")]
    pub handle: Option<String>,

    /// Port or range LOW-HIGH for this client (overrides `port`)
    #[arg(long, global = true, value_name = "PORT")]
    pub port: Option<String>,

    /// The discovery port (overrides `whoisport`)
    #[arg(long, global = true, value_name = "PORT")]
    pub whoisport: Option<String>,

    /// Set any config key, e.g. --set heartbeat=2 (repeatable)
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    pub set: Vec<String>,

    /// More log output on stderr (-v info, -vv debug, -vvv trace)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// What to run; the chat prompt when omitted
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The parts of slcp, one per subcommand.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run this host's discovery service in the foreground (one per host)
    Discovery {
        /// Run even if another discovery service listens on this host
        #[arg(long)]
        share: bool,
    },
    /// Run your chat client in the foreground (plain `slcp` starts it in the background)
    Client,
    /// Open the prompt on the client that runs for your handle
    Repl,
    /// Open the chat in your web browser (a page served on 127.0.0.1 to you alone); starts
    /// discovery and your client when they are not running
    Web {
        /// Print the page's address instead of opening a browser
        #[arg(long)]
        no_open: bool,
    },
    /// Check the network: interfaces, broadcast addresses, discoveries that answer, what is blocked
    Doctor,
    /// List the plugins found (name, version, file, commands) and the files that failed to load
    Plugins,
    /// Print the effective configuration, each key with where its value came from
    Config {
        /// Print a commented config file with every key at its default instead
        #[arg(long)]
        default: bool,
    },
    /// Print a completion script for a shell (e.g. `slcp completions bash > ~/.local/share/bash-completion/completions/slcp`)
    Completions {
        /// bash, zsh, fish, elvish or powershell
        shell: clap_complete::Shell,
    },
    /// Print the manual page (e.g. `slcp man > ~/.local/share/man/man1/slcp.1`)
    Man,
}

impl Cli {
    /// `slcp` with the options that pick this user (`--config`, `--handle`, ...), as a hint to
    /// type: `slcp --config alice.toml repl`.
    pub fn again(&self, sub: &str) -> String {
        let mut words = vec!["slcp".to_string()];
        for a in self.config_args() {
            if a.starts_with('-') || !a.contains([' ', '"', '\'', '$']) {
                words.push(a);
            } else {
                words.push(format!("'{}'", a.replace('\'', "'\\''")));
            }
        }
        if !sub.is_empty() {
            words.push(sub.to_string());
        }
        words.join(" ")
    }

    /// The global options again, for starting another part with the same config.
    pub fn config_args(&self) -> Vec<String> {
        let mut a = Vec::new();
        if let Some(c) = &self.config {
            a.push("--config".to_string());
            a.push(c.display().to_string());
        }
        for (flag, v) in [
            ("--handle", &self.handle),
            ("--port", &self.port),
            ("--whoisport", &self.whoisport),
        ] {
            if let Some(v) = v {
                a.push(flag.to_string());
                a.push(v.clone());
            }
        }
        for kv in &self.set {
            a.push("--set".to_string());
            a.push(kv.clone());
        }
        if self.verbose > 0 {
            a.push(format!("-{}", "v".repeat(self.verbose.into())));
        }
        a
    }

    /// Loads the config from the file, the environment and this command line.
    pub fn load_config(&self) -> Result<Loaded, ConfigError> {
        let mut flags = Vec::new();
        for (flag, key, value) in [
            ("--handle", "handle", &self.handle),
            ("--port", "port", &self.port),
            ("--whoisport", "whoisport", &self.whoisport),
        ] {
            if let Some(v) = value {
                flags.push((flag.to_string(), key.to_string(), v.clone()));
            }
        }
        for kv in &self.set {
            let (k, v) = kv.split_once('=').ok_or_else(|| ConfigError::BadValue {
                origin: "--set".into(),
                key: kv.clone(),
                found: format!("{kv:?}"),
                allowed: "KEY=VALUE, e.g. --set heartbeat=2".into(),
            })?;
            flags.push(("--set".into(), k.trim().to_string(), v.to_string()));
        }
        Config::load(
            &Overrides {
                file: self.config.clone(),
                flags,
            },
            std::env::vars(),
        )
    }
}
