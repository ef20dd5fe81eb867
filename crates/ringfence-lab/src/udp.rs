//! UDP: protocol-shaped requests (DNS, NTP), responders that answer them, and
//! a classification of what came back.

use std::net::{SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// The request a probe sends to `port`: a DNS query for `.` NS to 53, an NTP
/// client packet to 123, otherwise an empty datagram.
pub fn request_for(port: u16) -> Vec<u8> {
    match port {
        53 => vec![
            0x52, 0x46, // id
            0x01, 0x00, // standard query, recursion desired
            0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // 1 question
            0x00, // root name
            0x00, 0x02, 0x00, 0x01, // NS, IN
        ],
        123 => {
            let mut p = vec![0u8; 48];
            p[0] = 0x23; // LI 0, version 4, mode 3 (client)
            p
        }
        _ => Vec::new(),
    }
}

/// The answer a lab responder gives to `req` on `port`.
pub fn response_for(port: u16, req: &[u8]) -> Vec<u8> {
    match port {
        53 if req.len() >= 12 => {
            let mut r = req.to_vec();
            r[2] |= 0x80; // QR: a response
            r[3] = 0x83; // recursion available, NXDOMAIN: no data, but an answer
            r
        }
        123 => {
            let mut p = vec![0u8; 48];
            p[0] = 0x24; // version 4, mode 4 (server)
            p[1] = 16; // unsynchronized stratum
            if req.len() >= 48 {
                p[24..32].copy_from_slice(&req[40..48]); // origin = client's transmit
            }
            p
        }
        _ => req.to_vec(),
    }
}

/// What a UDP probe saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpOutcome {
    /// A datagram came back.
    Answered,
    /// An ICMP unreachable came back.
    Refused,
    /// Nothing came back: filtered, or open but silent.
    Silent,
}

/// One UDP request from `src` to `dst`, waiting up to `timeout` for an answer.
/// The calling thread must already be in the source namespace.
pub fn udp_once(
    src: SocketAddrV4,
    dst: SocketAddrV4,
    timeout: Duration,
) -> std::io::Result<UdpOutcome> {
    let s = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    s.set_reuse_address(true)?;
    s.bind(&socket2::SockAddr::from(src))?;
    let s: UdpSocket = s.into();
    s.connect(dst)?;
    s.set_read_timeout(Some(timeout))?;
    s.send(&request_for(dst.port()))?;
    let mut buf = [0u8; 512];
    match s.recv(&mut buf) {
        Ok(_) => Ok(UdpOutcome::Answered),
        Err(e) => match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => Ok(UdpOutcome::Silent),
            std::io::ErrorKind::ConnectionRefused => Ok(UdpOutcome::Refused),
            _ if matches!(e.raw_os_error(), Some(113 | 101 | 13 | 71)) => Ok(UdpOutcome::Refused),
            _ => Err(e),
        },
    }
}

/// UDP sockets answering every datagram (see [`response_for`]); stopped on drop.
pub struct UdpResponders {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl UdpResponders {
    /// Bind a responder on every `(namespace, address:port)`.
    pub fn start(binds: &[(String, SocketAddrV4)]) -> std::io::Result<Self> {
        let mut socks = Vec::new();
        for (ns, a) in binds {
            let a = *a;
            let s = crate::in_netns(ns, move || -> std::io::Result<UdpSocket> {
                let s = UdpSocket::bind(a)?;
                s.set_nonblocking(true)?;
                Ok(s)
            })??;
            socks.push((a.port(), s));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !flag.load(Ordering::Relaxed) {
                let mut busy = false;
                for (port, s) in &socks {
                    while let Ok((n, from)) = s.recv_from(&mut buf) {
                        let _ = s.send_to(&response_for(*port, &buf[..n]), from);
                        busy = true;
                    }
                }
                if !busy {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        });
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for UdpResponders {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_and_ntp_requests_get_shaped_answers() {
        let q = request_for(53);
        let a = response_for(53, &q);
        assert_eq!(a[0..2], q[0..2]);
        assert_eq!(a[2] & 0x80, 0x80);
        let n = request_for(123);
        assert_eq!(n.len(), 48);
        assert_eq!(n[0] & 7, 3);
        let r = response_for(123, &n);
        assert_eq!(r[0] & 7, 4);
        assert!(request_for(5000).is_empty());
    }
}
