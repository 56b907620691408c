//! Addresses for the servers a test starts. Each one is a Pod to istiod, and istiod tells Pods apart by IP
//! (the gateway's own Pod is 127.0.0.1), so each server binds its own address of 127.0.0.0/8, all of which
//! Linux's loopback answers.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The next address of 127.0.1.1 – 127.0.250.250, in turn; a process wraps around after 62,500 servers.
pub fn next_address() -> IpAddr {
    let n = NEXT.fetch_add(1, Ordering::Relaxed) % (250 * 250);
    let (high, low) = (n / 250, n % 250);
    IpAddr::from([127, 0, 1 + u8::try_from(high).unwrap_or(0), 1 + u8::try_from(low).unwrap_or(0)])
}

/// A port free on every loopback address right now (for a listener another process opens).
pub fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind(("0.0.0.0", 0))?;
    Ok(listener.local_addr()?.port())
}
