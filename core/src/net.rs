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

/// Whether `ip` belongs to this host (loopback, or an address of one of its interfaces).
pub fn is_local(ip: IpAddr, local: &[Ipv4Addr]) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || local.contains(&v4),
        IpAddr::V6(v6) => v6.is_loopback(),
    }
}

/// The addresses of this host's interfaces.
pub fn local_addresses() -> Vec<Ipv4Addr> {
    interfaces().into_iter().map(|i| i.ip).collect()
}
