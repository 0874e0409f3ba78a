//! `slcp doctor` and DOCTOR: why discovery does or does not work, in plain lines with what to
//! check.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use slcp_config::Config;
use slcp_core::Message;
use slcp_core::codec;
use slcp_core::ipc::RuntimeInfo;
use slcp_core::net;

use crate::launcher;

/// The report: lines to print, and how many of them are problems.
pub struct Report {
    /// Everything, in order.
    pub lines: Vec<String>,
    /// How many problems were found.
    pub problems: usize,
}

impl Report {
    fn info(&mut self, s: String) {
        self.lines.push(s);
    }

    fn problem(&mut self, s: String) {
        self.problems += 1;
        self.lines.push(format!("PROBLEM: {s}"));
    }
}

/// Sends WHO to each target and collects the KNOWUSERS answers for `wait`, by source address.
fn ask_who(targets: &[SocketAddr], wait: Duration) -> BTreeMap<IpAddr, Vec<codec::UserEntry>> {
    let mut out: BTreeMap<IpAddr, Vec<codec::UserEntry>> = BTreeMap::new();
    let Ok(sock) = net::bind_udp(0, false) else {
        return out;
    };
    let _ = sock.set_nonblocking(false);
    for t in targets {
        let _ = sock.send_to(b"WHO\n", t);
    }
    let deadline = Instant::now() + wait;
    let mut buf = vec![0u8; 65_536];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || sock.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match sock.recv_from(&mut buf) {
            Ok((n, src)) => {
                for m in codec::decode_datagram(&buf[..n]).into_iter().flatten() {
                    if let Message::KnowUsers(e) = m {
                        out.entry(src.ip()).or_default().extend(e);
                    }
                }
            }
            Err(_) => break,
        }
    }
    out
}

fn answered(
    sock_answers: &BTreeMap<IpAddr, Vec<codec::UserEntry>>,
    ip: IpAddr,
    local: &[std::net::Ipv4Addr],
) -> bool {
    sock_answers
        .keys()
        .any(|a| *a == ip || (net::is_local(*a, local) && net::is_local(ip, local)))
}

/// Runs every check.
pub fn run(cfg: &Config) -> Report {
    let mut r = Report {
        lines: Vec::new(),
        problems: 0,
    };
    let wait = cfg.who_wait.max(Duration::from_millis(500));
    let local = net::local_addresses();

    // Interfaces and where broadcasts go.
    let targets_ip = net::broadcast_targets(
        &cfg.broadcast
            .iter()
            .chain(&cfg.peers)
            .copied()
            .collect::<Vec<_>>(),
        cfg.interfaces,
        &cfg.interface,
    );
    r.info("interfaces:".into());
    for i in net::interfaces() {
        let used = i
            .broadcast
            .is_some_and(|b| targets_ip.contains(&IpAddr::V4(b)));
        r.info(format!(
            "  {:8} {:15} broadcast {:15} {}",
            i.name,
            i.ip.to_string(),
            i.broadcast
                .map(|b| b.to_string())
                .unwrap_or_else(|| "-".into()),
            if used {
                "used"
            } else if i.loopback {
                "loopback"
            } else {
                "not used"
            }
        ));
    }
    if !cfg.interface.is_empty() && !net::interfaces().iter().any(|i| i.name == cfg.interface) {
        r.problem(format!(
            "`interface = \"{}\"` names no interface that is up; fix the config or bring it up",
            cfg.interface
        ));
    }
    let shown: Vec<String> = targets_ip.iter().map(|a| a.to_string()).collect();
    r.info(format!(
        "JOIN/LEAVE/WHO/AWAY/BACK go to: {} (UDP port {})",
        shown.join(", "),
        cfg.whoisport
    ));
    if !targets_ip.iter().any(|a| !a.is_loopback()) {
        r.info(
            "  only this machine is reached: no LAN interface with a broadcast address is used"
                .into(),
        );
    }

    // This host's discovery and this user's client.
    match launcher::discovery_status(cfg.whoisport) {
        Ok(Some(v)) => r.info(format!(
            "discovery on this host: running (pid {}, {} users, {} malformed datagrams dropped)",
            v["pid"], v["users"], v["malformed"]
        )),
        Ok(None) => r.problem(format!(
            "no discovery runs on this host (nothing on TCP 127.0.0.1:{}); start one with `slcp discovery` (plain `slcp` starts it)",
            cfg.whoisport
        )),
        Err(e) => r.problem(format!("{e:#}")),
    }
    let rt = RuntimeInfo::read(&launcher::runtime_file(cfg))
        .ok()
        .flatten();
    match &rt {
        Some(info) => r.info(format!(
            "your client ({}): pid {}, UDP/TCP port {}, IPC 127.0.0.1:{}",
            cfg.handle, info.pid, info.port, info.ipc_port
        )),
        None => r.info(format!("your client ({}): not running", cfg.handle)),
    }

    // Who answers a WHO, and from where.
    let targets: Vec<SocketAddr> = targets_ip
        .iter()
        .map(|ip| SocketAddr::new(*ip, cfg.whoisport))
        .collect();
    let answers = ask_who(&targets, wait);
    if answers.is_empty() {
        r.problem(format!(
            "no discovery answered WHO within {wait:?}: none runs, or broadcasts to UDP port {} do not get through",
            cfg.whoisport
        ));
    }
    for (ip, users) in &answers {
        let mut names: Vec<String> = users.iter().map(|u| u.handle.to_string()).collect();
        names.sort();
        r.info(format!(
            "discovery at {ip} answered: {} user(s){}{}",
            names.len(),
            if names.is_empty() { "" } else { ": " },
            names.join(", ")
        ));
        if let Some(info) = &rt {
            let lists_me = users
                .iter()
                .any(|u| u.handle == cfg.handle && u.port == info.port);
            if !lists_me {
                let other = users.iter().find(|u| u.handle == cfg.handle);
                match other {
                    Some(o) => r.problem(format!(
                        "the discovery at {ip} gives your handle {} to {}:{}; choose another with HANDLE <new>",
                        cfg.handle, o.ip, o.port
                    )),
                    None => r.problem(format!(
                        "the discovery at {ip} answers you but does not list you: your JOIN does not reach it (wait one heartbeat, or check that its host is in your broadcast domain or in `peers`)"
                    )),
                }
            }
        }
    }

    // Hosts we hear of whose discovery does not answer us: which direction is blocked?
    let heard: BTreeSet<IpAddr> = answers
        .values()
        .flatten()
        .map(|u| u.ip)
        .filter(|ip| !net::is_local(*ip, &local))
        .collect();
    for host in heard {
        if answered(&answers, host, &local) {
            continue;
        }
        let direct = ask_who(&[SocketAddr::new(host, cfg.whoisport)], wait);
        if !direct.is_empty() {
            r.problem(format!(
                "host {host} answers WHO sent to it directly but not our broadcast: our broadcasts do not reach it (another subnet?); add \"{host}\" to `peers`, or pin the right `interface`"
            ));
        } else {
            r.problem(format!(
                "users at {host} are known, but its discovery does not answer us: it is not running there, or UDP port {} is blocked from here to {host} or from {host} back here (check firewalls both ways)",
                cfg.whoisport
            ));
        }
    }
    r.info(format!(
        "ports: discovery UDP {} (and TCP 127.0.0.1:{} for its status), clients {}",
        cfg.whoisport, cfg.whoisport, cfg.port
    ));
    r.info(if r.problems == 0 {
        "no problems found".to_string()
    } else {
        format!("{} problem(s) found", r.problems)
    });
    r
}
