//! Addresses for the servers a test starts. Each one is a Pod to istiod, and istiod tells Pods apart by IP
//! (the gateway's own Pod is 127.0.0.1), so each server binds its own address of 127.0.0.0/8, all of which
//! Linux's loopback answers.

use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The next address of 127.0.1.1 – 127.0.250.250, in turn; a process wraps around after 62,500 servers.
pub fn next_address() -> IpAddr {
    let n = NEXT.fetch_add(1, Ordering::Relaxed) % (250 * 250);
    let (high, low) = (n / 250, n % 250);
    IpAddr::from([127, 0, 1 + u8::try_from(high).unwrap_or(0), 1 + u8::try_from(low).unwrap_or(0)])
}

/// A port free on every loopback address right now (for a listener another process opens).
///
/// Picked below the kernel's ephemeral range: a port from `bind(0)` could be handed by the kernel to any other
/// `bind(0)` or outgoing connection (Envoy's admin port, a client's socket) before the other process binds it.
/// Each process walks the range from its own random offset, and checks each port free before handing it out.
pub fn free_port() -> std::io::Result<u16> {
    let (low, high) = below_ephemeral();
    let span = u32::from(high - low);
    let start = *START.get_or_init(|| {
        let seed = std::collections::hash_map::RandomState::new().hash_one(std::process::id());
        u32::try_from(seed % u64::from(span)).unwrap_or(0)
    });
    for _ in 0..span {
        let n = start.wrapping_add(NEXT_PORT.fetch_add(1, Ordering::Relaxed)) % span;
        let port = low + u16::try_from(n).unwrap_or(0);
        if std::net::TcpListener::bind(("0.0.0.0", port)).is_ok() {
            return Ok(port);
        }
    }
    Err(std::io::Error::new(std::io::ErrorKind::AddrInUse, format!("no free port in {low}..{high}")))
}

static START: OnceLock<u32> = OnceLock::new();
static NEXT_PORT: AtomicU32 = AtomicU32::new(0);

/// 10000 up to the first ephemeral port (`/proc/sys/net/ipv4/ip_local_port_range`, Linux's default 32768).
fn below_ephemeral() -> (u16, u16) {
    let first_ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .filter(|&first| first > 11_000)
        .unwrap_or(32_768);
    (10_000, first_ephemeral)
}
