//! systemd notifications (the `sd_notify(3)` datagram protocol): READY once IMAP was reached,
//! WATCHDOG pings while the process stage is responsive, STOPPING at shutdown.
//!
//! Without `$NOTIFY_SOCKET` (not started by systemd) every call does nothing.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

use tracing::{debug, warn};

/// Where systemd listens, if it does.
pub(crate) struct Notifier {
    target: Option<SocketAddr>,
}

impl Notifier {
    pub(crate) fn from_env() -> Notifier {
        let target = std::env::var_os("NOTIFY_SOCKET").and_then(|path| {
            let bytes = path.as_encoded_bytes();
            let address = match bytes.strip_prefix(b"@") {
                // A leading '@' names a Linux abstract socket.
                Some(name) => {
                    use std::os::linux::net::SocketAddrExt as _;
                    SocketAddr::from_abstract_name(name)
                }
                None => SocketAddr::from_pathname(std::path::Path::new(&path)),
            };
            match address {
                Ok(address) => Some(address),
                Err(err) => {
                    warn!(error = %err, "NOTIFY_SOCKET is not usable; systemd will not hear from casemail.");
                    None
                }
            }
        });
        Notifier { target }
    }

    /// Sends one state line (`READY=1`, `WATCHDOG=1`, `STOPPING=1`, `STATUS=…`).
    pub(crate) fn notify(&self, state: &str) {
        let Some(target) = &self.target else { return };
        let sent = UnixDatagram::unbound()
            .and_then(|socket| socket.send_to_addr(state.as_bytes(), target));
        match sent {
            Ok(_) => debug!(state, "Told systemd."),
            Err(err) => warn!(error = %err, "Cannot notify systemd."),
        }
    }

    /// How often to ping the watchdog: half of `$WATCHDOG_USEC`, as systemd recommends.
    pub(crate) fn watchdog_interval(&self) -> Option<Duration> {
        self.target.as_ref()?;
        let micros: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
        (micros > 0).then(|| Duration::from_micros(micros / 2))
    }
}
