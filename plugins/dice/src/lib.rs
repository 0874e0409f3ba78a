//! slcp-plugin-dice: an example plugin to copy when writing your own.
//!
//! `DICE <handle> [NdM]` rolls N dice of M sides (1d6 when omitted), sends the result to
//! `<handle>` as a message and shows it to you. It uses a handle argument (completed with Tab)
//! and the host's send callback.

use std::hash::{BuildHasher, RandomState};

use slcp_plugin_api::{ArgKind, Command, Host, Plugin};

/// The plugin's state: a small random generator.
pub struct Dice {
    state: u64,
}

impl Dice {
    fn next(&mut self) -> u64 {
        // xorshift64: plenty for dice, and no dependency.
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }
}

/// Parses `NdM` (e.g. `2d6`); N in 1..=20, M in 2..=1000.
pub fn parse_spec(s: &str) -> Result<(u32, u32), String> {
    let bad = || format!("{s:?} is not NdM, e.g. 2d6 (1-20 dice of 2-1000 sides)");
    let (n, m) = s
        .to_ascii_lowercase()
        .split_once('d')
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .ok_or_else(bad)?;
    let n: u32 = if n.is_empty() {
        1
    } else {
        n.parse().map_err(|_| bad())?
    };
    let m: u32 = m.parse().map_err(|_| bad())?;
    if !(1..=20).contains(&n) || !(2..=1000).contains(&m) {
        return Err(bad());
    }
    Ok((n, m))
}

impl Plugin for Dice {
    const NAME: &'static str = "dice";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const COMMANDS: &'static [Command] = &[Command {
        word: "DICE",
        usage: "DICE <handle> [NdM]",
        help: "roll dice (default 1d6) and send the result to <handle>",
        args: &[ArgKind::Handle, ArgKind::Text],
    }];

    fn create(_host: &Host<'_>) -> Self {
        Dice {
            state: RandomState::new().hash_one(std::time::SystemTime::now()) | 1,
        }
    }

    fn command(&mut self, host: &Host<'_>, _word: &str, args: &str) -> Result<(), String> {
        let mut words = args.split_whitespace();
        let to = words.next().ok_or("usage: DICE <handle> [NdM]")?;
        let (n, m) = parse_spec(words.next().unwrap_or("1d6"))?;
        if words.next().is_some() {
            return Err("usage: DICE <handle> [NdM]".into());
        }
        let rolls: Vec<u64> = (0..n).map(|_| self.next() % u64::from(m) + 1).collect();
        let total: u64 = rolls.iter().sum();
        let shown: Vec<String> = rolls.iter().map(u64::to_string).collect();
        let text = format!("rolled {n}d{m}: {} = {total}", shown.join(" + "));
        host.send_msg(to, &text)?;
        host.print(&format!("{text} (sent to {to})"));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        assert_eq!(parse_spec("2d6"), Ok((2, 6)));
        assert_eq!(parse_spec("d20"), Ok((1, 20)));
        assert_eq!(parse_spec("1D100"), Ok((1, 100)));
        for bad in ["", "6", "0d6", "21d6", "2d1", "2dx", "xd6"] {
            assert!(parse_spec(bad).is_err(), "{bad} accepted");
        }
    }
}
