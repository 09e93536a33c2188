//! systemd readiness notification (`Type=notify`): a datagram to `$NOTIFY_SOCKET`. Written by
//! hand because it is a dozen lines; a no-op when not started by systemd.

use std::os::unix::net::UnixDatagram;

/// Send a state string such as `READY=1` or `STOPPING=1`.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = UnixDatagram::unbound() else {
        return;
    };
    let bytes = path.as_encoded_bytes();
    let r = if let Some(abstract_name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(abstract_name)
            .and_then(|a| sock.send_to_addr(state.as_bytes(), &a))
    } else {
        sock.send_to(state.as_bytes(), &path)
    };
    if let Err(e) = r {
        tracing::warn!(error = %e, "sd_notify failed");
    }
}
