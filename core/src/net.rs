//! Socket set-up shared by the client and the discovery daemon: binding, port ranges, broadcast
//! targets and this host's own addresses.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};

use socket2::{Domain, Protocol, Socket, Type};

/// Binds a UDP socket on `0.0.0.0:port` able to send broadcasts. With `shared`, other sockets
/// may bind the same port (SO_REUSEADDR and SO_REUSEPORT), as discovery listeners sharing a
/// port need.
pub fn bind_udp(port: u16, shared: bool) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    if shared {
        s.set_reuse_address(true)?;
        s.set_reuse_port(true)?;
    }
    s.set_broadcast(true)?;
    // Bursts of JOIN/WHO from many clients must not be dropped by a small default buffer.
    let _ = s.set_recv_buffer_size(4 << 20);
    s.set_nonblocking(true)?;
    s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)).into())?;
    Ok(s.into())
}

/// Binds a TCP listener on `ip:port` (SO_REUSEADDR so a restart is not blocked by TIME_WAIT).
pub fn bind_tcp(ip: IpAddr, port: u16) -> io::Result<TcpListener> {
    let s = Socket::new(Domain::for_address((ip, port).into()), Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&SocketAddr::from((ip, port)).into())?;
    s.listen(128)?;
    Ok(s.into())
}

/// The first port of `low..=high` free for both UDP and TCP, with both sockets bound.
pub fn bind_port_pair(low: u16, high: u16) -> Result<(u16, UdpSocket, TcpListener), BindError> {
    for port in low..=high {
        let Ok(udp) = bind_udp(port, false) else {
            continue;
        };
        let Ok(tcp) = bind_tcp(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port) else {
            continue;
        };
        return Ok((port, udp, tcp));
    }
    Err(BindError::RangeExhausted { low, high })
}

/// Why no port could be bound.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// Every port of the range is taken.
    #[error(
        "every port of the range {low}-{high} is in use (UDP or TCP); widen `port` in the config or stop another slcp client"
    )]
    RangeExhausted {
        /// First port.
        low: u16,
        /// Last port.
        high: u16,
    },
}

/// An IPv4 interface of this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Its name, e.g. `eth0`.
    pub name: String,
    /// Its address.
    pub ip: Ipv4Addr,
    /// Its broadcast address, if it has one.
    pub broadcast: Option<Ipv4Addr>,
    /// Whether it is the loopback interface.
    pub loopback: bool,
}

/// This host's IPv4 interfaces that are up.
pub fn interfaces() -> Vec<Interface> {
    let Ok(all) = if_addrs::get_if_addrs() else {
        return Vec::new();
    };
    all.into_iter()
        .filter_map(|i| match &i.addr {
            if_addrs::IfAddr::V4(v4) => Some(Interface {
                name: i.name.clone(),
                ip: v4.ip,
                broadcast: v4.broadcast,
                loopback: i.is_loopback(),
            }),
            _ => None,
        })
        .collect()
}

/// Where broadcasts go: the configured addresses, then (with `use_interfaces`) the broadcast
/// address of every non-loopback IPv4 interface that is up (only `pin`'s when it is not empty);
/// no address twice. Static peers are simply more targets (unicast).
pub fn broadcast_targets(configured: &[IpAddr], use_interfaces: bool, pin: &str) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    let iface: Vec<IpAddr> = if use_interfaces {
        interfaces()
            .into_iter()
            .filter(|i| !i.loopback && (pin.is_empty() || i.name == pin))
            .filter_map(|i| i.broadcast.map(IpAddr::V4))
            .collect()
    } else {
        Vec::new()
    };
    for a in configured.iter().copied().chain(iface) {
        if !out.contains(&a) {
            out.push(a);
        }
    }
    out
}

/// Whether `ip` is this host as a client's datagrams show it: 127.0.0.1 (where loopback
/// broadcasts and connects come from) or an address of one of its interfaces. Another 127.x
/// address is not: nothing of ours sends from one, and a local user who binds one to pose as
/// somebody is told apart like another host.
pub fn is_local(ip: IpAddr, local: &[Ipv4Addr]) -> bool {
    match ip {
        IpAddr::V4(v4) => v4 == Ipv4Addr::LOCALHOST || local.contains(&v4),
        IpAddr::V6(v6) => v6.is_loopback(),
    }
}

/// The addresses of this host's interfaces.
pub fn local_addresses() -> Vec<Ipv4Addr> {
    interfaces().into_iter().map(|i| i.ip).collect()
}

/// Asks the kernel to queue an error for every datagram of `s` that bounces (ICMP port or host
/// unreachable), with the datagram's destination, so [`read_bounces`] can tell which peer is gone.
pub fn enable_bounces(s: &impl std::os::fd::AsFd) -> io::Result<()> {
    nix::sys::socket::setsockopt(s, nix::sys::socket::sockopt::Ipv4RecvErr, &true)
        .map_err(io::Error::from)
}

/// The destinations of our datagrams that bounced with "port unreachable" (nobody listens there)
/// since the last call; other errors are dropped. Never blocks.
pub fn read_bounces(s: &impl std::os::fd::AsRawFd) -> Vec<SocketAddr> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrIn, recvmsg};
    let mut out = Vec::new();
    // Bounded: a flood of errors is read in slices, the rest on the next readiness.
    for _ in 0..256 {
        let mut data = [0u8; 64];
        let mut iov = [std::io::IoSliceMut::new(&mut data)];
        let mut cmsg = nix::cmsg_space!(libc_sock_extended_err, libc_sockaddr_in);
        let r = recvmsg::<SockaddrIn>(
            s.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_ERRQUEUE | MsgFlags::MSG_DONTWAIT,
        );
        let Ok(msg) = r else { break };
        let dest = msg.address.map(|a| SocketAddr::from((a.ip(), a.port())));
        let Ok(mut cmsgs) = msg.cmsgs() else { continue };
        let refused = cmsgs.any(|c| {
            matches!(c, ControlMessageOwned::Ipv4RecvErr(e, _)
                if e.ee_errno == nix::errno::Errno::ECONNREFUSED as u32)
        });
        if let (true, Some(d)) = (refused, dest) {
            out.push(d);
        }
    }
    out
}

/// Sizes for the control buffer of [`read_bounces`] (`struct sock_extended_err` and the
/// offender's `struct sockaddr_in`), spelled as arrays so no libc types are needed here.
#[allow(non_camel_case_types)]
type libc_sock_extended_err = [u32; 4];
#[allow(non_camel_case_types)]
type libc_sockaddr_in = [u8; 16];

/// Whether an slcp discovery runs on this host for `whoisport`: its status port (TCP on
/// 127.0.0.1, the same number) answers a line naming it. Another implementation's discovery
/// has none, and would not speak for our clients on the LAN.
pub fn slcp_discovery_runs(whoisport: u16) -> bool {
    use std::io::Read;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, whoisport));
    let Ok(s) = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(300))
    else {
        return false;
    };
    let _ = s.set_read_timeout(Some(std::time::Duration::from_millis(500)));
    let mut line = Vec::new();
    let _ = s.take(4096).read_to_end(&mut line);
    String::from_utf8_lossy(&line).contains("\"service\":\"slcp-discovery\"")
}
