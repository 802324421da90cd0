//! TCP_NODELAY for PostgreSQL connections, which sqlx 0.9.0 no longer sets
//! (sqlx issue #4335; the fix, PR #4336, is not in a release on crates.io
//! yet). Without it a statement that goes out in more than one write waits
//! ~40 ms for the server's delayed ACK (Nagle): with TLS that is any
//! statement over one 16 KiB record. Intake's multi-row INSERTs had to be
//! cut into ~12 KiB statements because of it, about ten per batch for the
//! rendered mail alone.
//!
//! sqlx gives no access to its socket, so after each connect this finds
//! the process's TCP sockets whose peer is the server's port and sets the
//! option on them (it is harmless on any other socket, and setting it
//! twice is a no-op). Remove this module once sqlx sets it again.

use std::sync::atomic::{AtomicBool, Ordering};

/// False once any connection could not be given TCP_NODELAY: then
/// statements stay small enough for one TLS record.
static ALL_NODELAY: AtomicBool = AtomicBool::new(true);

/// Whether every PostgreSQL connection made so far has TCP_NODELAY.
pub fn all_connections() -> bool {
    ALL_NODELAY.load(Ordering::Relaxed)
}

/// Sets TCP_NODELAY on every TCP socket of this process connected to
/// `port`; records a failure when there was none.
pub fn set_for_peer_port(port: u16) {
    if set(port) == 0 {
        ALL_NODELAY.store(false, Ordering::Relaxed);
        tracing::warn!(
            "could not set TCP_NODELAY on a PostgreSQL connection; large statements are split"
        );
    }
}

#[cfg(target_os = "linux")]
fn set(port: u16) -> usize {
    use std::os::fd::BorrowedFd;
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    let mut done = 0;
    for entry in dir.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|t| t.to_string_lossy().starts_with("socket:"));
        if !is_socket {
            continue;
        }
        // SAFETY: the descriptor is only borrowed for the two calls below.
        // Should another thread close it meanwhile and the number be reused,
        // the calls fail or touch that other socket, and TCP_NODELAY is
        // harmless on any TCP socket.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let sock = socket2::SockRef::from(&fd);
        let peer_port = sock
            .peer_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .map(|a| a.port());
        if peer_port == Some(port) && sock.set_tcp_nodelay(true).is_ok() {
            done += 1;
        }
    }
    done
}

#[cfg(not(target_os = "linux"))]
fn set(_port: u16) -> usize {
    0
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn sets_nodelay_on_sockets_to_the_port_and_only_those() {
        let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let to_server = std::net::TcpStream::connect(server.local_addr().unwrap()).unwrap();
        let to_other = std::net::TcpStream::connect(other.local_addr().unwrap()).unwrap();
        assert!(!to_server.nodelay().unwrap());

        assert_eq!(super::set(server.local_addr().unwrap().port()), 1);
        assert!(to_server.nodelay().unwrap());
        assert!(!to_other.nodelay().unwrap());
    }
}
