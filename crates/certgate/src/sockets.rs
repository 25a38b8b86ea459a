//! What the node takes from the operating system before it serves: as many file descriptors as
//! it is allowed, listen sockets with the longest backlog the kernel accepts, and from those
//! the connection caps of its listeners.

use std::net::SocketAddr;

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use tokio::net::{TcpListener, TcpSocket};

/// The backlog when `/proc/sys/net/core/somaxconn` cannot be read (the kernel clamps what we
/// ask to that value anyway).
const FALLBACK_BACKLOG: u32 = 4096;

/// Descriptors kept back from the gateway's share for everything that is not a client or
/// backend connection: the store's database files and connections, the vault client, the
/// runtime's epoll and event descriptors, standard streams, and headroom.
const RESERVED_DESCRIPTORS: u64 = 128;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (1 024 is a common default soft limit, far
/// too few for a proxy, which holds two descriptors per proxied request), logs the outcome
/// once, and returns the limit now in force.
pub fn raise_descriptor_limit() -> u64 {
    let limit = getrlimit(Resource::Nofile);
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open").ok().and_then(|text| text.trim().parse().ok());
    let Some(current) = limit.current else {
        tracing::info!("open-file limit: unlimited");
        return u64::MAX;
    };
    let Some(target) = raised_limit(current, limit.maximum, nr_open) else {
        tracing::info!(limit = current, "open-file limit (already the hard limit)");
        return current;
    };
    match setrlimit(Resource::Nofile, Rlimit { current: Some(target), maximum: limit.maximum }) {
        Ok(()) => {
            tracing::info!(from = current, to = target, "open-file limit raised to the hard limit");
            target
        }
        Err(error) => {
            tracing::warn!(limit = current, wanted = target, %error, "cannot raise the open-file limit");
            current
        }
    }
}

/// The soft limit to set, when it is below what may be had: the hard limit, or when that is
/// unlimited the kernel's ceiling for one process (`fs.nr_open`, 1 048 576 by default).
fn raised_limit(current: u64, maximum: Option<u64>, nr_open: Option<u64>) -> Option<u64> {
    let ceiling = maximum.unwrap_or_else(|| nr_open.unwrap_or(1 << 20));
    (current < ceiling).then_some(ceiling)
}

/// The longest listen backlog the kernel accepts (`net.core.somaxconn`), so connections
/// waiting at the connection cap queue instead of being dropped.
pub fn listen_backlog() -> u32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .filter(|&backlog| backlog > 0)
        .unwrap_or(FALLBACK_BACKLOG)
}

/// A listening socket on `addr` with `backlog` (tokio's `TcpListener::bind` fixes 1 024).
/// `SO_REUSEADDR` as `TcpListener::bind` sets it, so a restarted node does not wait out
/// TIME_WAIT.
pub fn bind(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// The gateway listeners' shared cap when none is configured: the descriptor limit less the
/// management API's cap and a reserve, halved because every proxied request holds a backend
/// connection besides its client connection.
pub fn derived_gateway_cap(descriptor_limit: u64, admin_cap: usize) -> usize {
    let spare = descriptor_limit.saturating_sub(RESERVED_DESCRIPTORS).saturating_sub(admin_cap as u64);
    usize::try_from(spare / 2).unwrap_or(usize::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one_or_to_the_kernel_ceiling() {
        assert_eq!(raised_limit(1024, Some(524_288), Some(1 << 20)), Some(524_288));
        assert_eq!(raised_limit(1024, None, Some(2_000_000)), Some(2_000_000));
        assert_eq!(raised_limit(1024, None, None), Some(1 << 20));
        assert_eq!(raised_limit(20_000, Some(20_000), None), None, "already at the hard limit");
    }

    #[test]
    fn the_gateway_gets_half_of_what_is_left_after_the_reserve() {
        assert_eq!(derived_gateway_cap(1024, 256), (1024 - 128 - 256) / 2);
        assert_eq!(derived_gateway_cap(1 << 20, 256), ((1 << 20) - 128 - 256) / 2);
        assert_eq!(derived_gateway_cap(100, 256), 1, "a tiny limit still serves");
    }

    #[tokio::test]
    async fn a_listener_takes_the_backlog_it_is_given() {
        let listener = bind(([127, 0, 0, 1], 0).into(), 7).expect("bind");
        let port = listener.local_addr().expect("address").port();
        assert_eq!(listen_queue_size(port), 7);
    }

    /// A listening socket's backlog, as `ss` shows it (Send-Q of a LISTEN line).
    pub(crate) fn listen_queue_size(port: u16) -> u32 {
        let output = std::process::Command::new("ss")
            .args(["-lnt", &format!("sport = :{port}")])
            .output()
            .expect("the `ss` command (iproute2) runs");
        let text = String::from_utf8_lossy(&output.stdout);
        let line =
            text.lines().find(|line| line.starts_with("LISTEN")).unwrap_or_else(|| panic!("no listener: {text}"));
        line.split_whitespace().nth(2).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("no Send-Q: {line}"))
    }
}
