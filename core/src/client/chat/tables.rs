//! The tables the prompt asks for: WHO (with the forms and extensions each peer showed),
//! STATUS and HELP.

use super::{Chat, State};

impl Chat {
    /// The WHO table; with `verbose`, the forms learned of each peer (its dialect) too.
    pub(super) fn who_table(&self, verbose: bool) -> Vec<String> {
        if self.peers.is_empty() {
            return vec!["nobody else is here".to_string()];
        }
        let mut rows: Vec<Vec<String>> = vec![
            ["HANDLE", "ADDRESS", "STATUS", "PRIVACY", "FORMS"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        ];
        // The table keeps the order peers were learned in; a person reads them sorted.
        let mut sorted: Vec<_> = self.peers.map().iter().collect();
        sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
        for (h, p) in sorted {
            let mut forms = p.forms.to_string();
            if let Some(port) = self.s.image_ports.get(h.as_str()) {
                forms.push_str(&format!(",images on {port}"));
            }
            if let Some(e) = p.exts {
                forms.push_str(&format!(",slcpx:{}", e.list().replace(',', "+")));
            }
            rows.push(vec![
                h.to_string(),
                p.addr.to_string(),
                if p.away { "away" } else { "here" }.to_string(),
                self.privacy_of(h).to_string(),
                forms,
            ]);
        }
        let cols = if verbose { 5 } else { 4 };
        let widths: Vec<usize> = (0..cols)
            .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
            .collect();
        rows.iter()
            .map(|r| {
                let cells: Vec<String> = (0..cols)
                    .map(|c| {
                        let pad = widths[c] - r[c].chars().count();
                        if c + 1 == cols {
                            r[c].clone()
                        } else {
                            format!("{}{}", r[c], " ".repeat(pad))
                        }
                    })
                    .collect();
                cells.join("  ")
            })
            .collect()
    }

    /// WHO --json: one object per peer (for scripts and the web UI).
    pub(super) fn who_json(&self) -> Vec<String> {
        self.peers
            .map()
            .iter()
            .map(|(h, p)| {
                serde_json::json!({
                    "handle": h.as_str(),
                    "addr": p.addr.to_string(),
                    "status": if p.away { "away" } else { "here" },
                    "privacy": self.privacy_of(h).to_string(),
                    "forms": p.forms.to_string(),
                    "slcpx": p.exts.map(|e| e.list()),
                })
                .to_string()
            })
            .collect()
    }

    /// STATUS --json: one object.
    pub(super) fn status_json(&self) -> Vec<String> {
        let state = match &self.state {
            State::Joined => "joined",
            State::Left => "left",
            State::Clashed(_) => "clashed",
        };
        vec![
            serde_json::json!({
                "handle": self.me.as_str(),
                "port": self.s.port,
                "state": state,
                "away": self.away,
                "peers": self.peers.len(),
                "datagrams": self.stats.datagrams,
                "malformed": self.stats.malformed,
                "refused": self.stats.refused,
                "messages_in": self.stats.messages_in,
                "messages_out": self.stats.messages_out,
            })
            .to_string(),
        ]
    }

    pub(super) fn status(&self) -> Vec<String> {
        let state = match &self.state {
            State::Joined => "joined".to_string(),
            State::Left => "left".to_string(),
            State::Clashed(by) => format!("not joined: {} is held by {by}", self.me),
        };
        vec![
            format!("handle    {}", self.me),
            format!("port      {}", self.s.port),
            format!("state     {state}"),
            format!("away      {}", if self.away { "yes" } else { "no" }),
            format!("peers     {}", self.peers.len()),
            format!("datagrams {}", self.stats.datagrams),
            format!("malformed {}", self.stats.malformed),
            format!("refused   {}", self.stats.refused),
            format!("msg in    {}", self.stats.messages_in),
            format!("msg out   {}", self.stats.messages_out),
        ]
    }

    pub(super) fn help(&self, rest: &str) -> Result<Vec<String>, String> {
        let want = rest.trim().trim_start_matches('/').to_ascii_uppercase();
        if !want.is_empty() {
            return self
                .commands
                .iter()
                .find(|c| c.word == want)
                .map(|c| vec![format!("{}  {}", c.usage, c.help)])
                .ok_or_else(|| format!("no command {want}; HELP lists the commands"));
        }
        let w = self
            .commands
            .iter()
            .map(|c| c.usage.len())
            .max()
            .unwrap_or(0);
        Ok(self
            .commands
            .iter()
            .map(|c| format!("{:w$}  {}", c.usage, c.help))
            .collect())
    }
}
