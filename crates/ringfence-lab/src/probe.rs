//! TCP listeners in destination namespaces and TCP connect probes from source
//! namespaces, classified by evidence.

use crate::netns::{enter, open_ns};
use crate::{check_address, LabError};
use rustix::event::epoll;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::collections::HashMap;
use std::fs::File;
use std::net::{SocketAddrV4, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// What the kernel did with one probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// TCP: the handshake completed. UDP: the echo responder's answer came
    /// back. Either way every hook accepted the packet.
    Connected,
    /// A TCP reset or an ICMP unreachable came back: a reject (or no listener).
    Refused,
    /// Nothing came back within the timeout: a drop.
    Timeout,
}

/// The transport protocol of a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Transport {
    /// A TCP connect.
    #[default]
    Tcp,
    /// A UDP datagram to an echo responder.
    Udp,
}

/// One probe: from `src` (bound address and port) inside namespace `from_ns`
/// to `dst`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// Source namespace.
    pub from_ns: String,
    /// Source address and port, bound before sending.
    pub src: SocketAddrV4,
    /// Destination.
    pub dst: SocketAddrV4,
    /// TCP or UDP.
    pub transport: Transport,
}

/// Listening sockets kept accepting by one background thread; stopped and
/// closed on drop.
pub struct Listeners {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    count: usize,
}

impl Listeners {
    /// Bind a TCP listener on every `(namespace, address:port)` and start accepting.
    pub fn start(binds: &[(String, SocketAddrV4)]) -> Result<Self, LabError> {
        Self::start_with(binds, &[])
    }

    /// TCP listeners on `tcp` and UDP echo responders (every datagram is sent
    /// back to its sender) on `udp`.
    pub fn start_with(
        tcp: &[(String, SocketAddrV4)],
        udp: &[(String, SocketAddrV4)],
    ) -> Result<Self, LabError> {
        let mut by_ns: HashMap<&str, (Vec<SocketAddrV4>, Vec<SocketAddrV4>)> = HashMap::new();
        for (ns, a) in tcp {
            check_address(*a.ip())?;
            by_ns.entry(ns.as_str()).or_default().0.push(*a);
        }
        for (ns, a) in udp {
            check_address(*a.ip())?;
            by_ns.entry(ns.as_str()).or_default().1.push(*a);
        }
        raise_fd_limit(tcp.len() + udp.len() + 256);
        let mut all = Vec::new();
        let mut echo = Vec::new();
        for (ns, (taddrs, uaddrs)) in by_ns {
            let (ls, us) = crate::in_netns(
                ns,
                || -> std::io::Result<(Vec<TcpListener>, Vec<UdpSocket>)> {
                    let ls = taddrs
                        .iter()
                        .map(|a| {
                            let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
                            s.set_reuse_address(true)?;
                            s.bind(&SockAddr::from(*a))?;
                            s.listen(1024)?;
                            s.set_nonblocking(true)?;
                            Ok(s.into())
                        })
                        .collect::<std::io::Result<Vec<TcpListener>>>()?;
                    let us = uaddrs
                        .iter()
                        .map(|a| {
                            let s = UdpSocket::bind(a)?;
                            s.set_nonblocking(true)?;
                            Ok(s)
                        })
                        .collect::<std::io::Result<Vec<UdpSocket>>>()?;
                    Ok((ls, us))
                },
            )??;
            all.extend(ls);
            echo.extend(us);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let count = all.len() + echo.len();
        // One epoll set for every socket: tens of thousands of listeners (a
        // NodePort range on many hosts) cost nothing while idle.
        let ep = epoll::create(epoll::CreateFlags::CLOEXEC).map_err(std::io::Error::from)?;
        for (i, l) in all.iter().enumerate() {
            epoll::add(
                &ep,
                l,
                epoll::EventData::new_u64(i as u64),
                epoll::EventFlags::IN,
            )
            .map_err(std::io::Error::from)?;
        }
        for (i, u) in echo.iter().enumerate() {
            let key = (all.len() + i) as u64;
            epoll::add(
                &ep,
                u,
                epoll::EventData::new_u64(key),
                epoll::EventFlags::IN,
            )
            .map_err(std::io::Error::from)?;
        }
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let blank = epoll::Event {
                flags: epoll::EventFlags::empty(),
                data: epoll::EventData::new_u64(0),
            };
            let mut events = vec![blank; 256];
            let tick = rustix::event::Timespec {
                tv_sec: 0,
                tv_nsec: 50_000_000,
            };
            while !flag.load(Ordering::Relaxed) {
                let n = match epoll::wait(&ep, &mut events[..], Some(&tick)) {
                    Ok(n) => n,
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(_) => break,
                };
                for ev in &events[..n] {
                    let key = ev.data.u64() as usize;
                    if let Some(l) = all.get(key) {
                        while let Ok((s, _)) = l.accept() {
                            drop(s);
                        }
                    } else if let Some(u) = echo.get(key - all.len()) {
                        while let Ok((n, from)) = u.recv_from(&mut buf) {
                            let _ = u.send_to(&buf[..n], from);
                        }
                    }
                }
            }
        });
        Ok(Self {
            stop,
            thread: Some(thread),
            count,
        })
    }

    /// How many sockets are listening.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there is no listener.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

impl Drop for Listeners {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Raise the soft open-file limit towards the hard one when `need` descriptors
/// are about to be opened (best effort: binding reports the real error).
fn raise_fd_limit(need: usize) {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let cur = getrlimit(Resource::Nofile);
    let need = need as u64;
    if cur.current.is_some_and(|c| c < need) {
        let target = cur
            .maximum
            .map_or(need, |m| m.min(need.max(cur.current.unwrap_or(0))));
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(target),
                maximum: cur.maximum,
            },
        );
    }
}

fn classify(r: std::io::Result<()>) -> std::io::Result<Outcome> {
    match r {
        Ok(()) => Ok(Outcome::Connected),
        Err(e) => match e.kind() {
            std::io::ErrorKind::ConnectionRefused => Ok(Outcome::Refused),
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => Ok(Outcome::Timeout),
            // ICMP host/net unreachable or administratively prohibited.
            _ if matches!(e.raw_os_error(), Some(113 | 101 | 13 | 71)) => Ok(Outcome::Refused),
            _ => Err(e),
        },
    }
}

fn set_recverr(s: &Socket) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let one: libc::c_int = 1;
    // SAFETY: a valid open socket descriptor, and a pointer to a c_int that
    // lives across the call with its exact size.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_RECVERR,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn udp_once(p: &Probe, timeout: Duration) -> std::io::Result<Outcome> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.bind(&SockAddr::from(p.src))?;
    // A connected UDP socket reports ICMP errors on receive; without
    // IP_RECVERR only "hard" ones (port unreachable, admin prohibited), so a
    // `reject with icmp host-unreachable` would look like a drop.
    set_recverr(&s)?;
    s.connect(&SockAddr::from(p.dst))?;
    s.set_read_timeout(Some(timeout))?;
    let s: UdpSocket = s.into();
    s.send(b"ringfence-lab probe")?;
    let mut buf = [0u8; 64];
    classify(s.recv(&mut buf).map(|_| ()))
}

fn connect_once(p: &Probe, timeout: Duration) -> std::io::Result<Outcome> {
    if p.transport == Transport::Udp {
        return udp_once(p, timeout);
    }
    let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    // Close with a reset: no TIME_WAIT left behind for the bound source port.
    s.set_linger(Some(Duration::ZERO))?;
    s.bind(&SockAddr::from(p.src))?;
    classify(s.connect_timeout(&SockAddr::from(p.dst), timeout))
}

/// Run every probe (up to `concurrency` at once) and return the outcomes in
/// order. Each attempt is a single SYN: `timeout` should stay below the first
/// retransmission (1 s); a few hundred milliseconds is plenty in a lab.
pub fn probe_all(
    probes: &[Probe],
    timeout: Duration,
    concurrency: usize,
) -> Result<Vec<Outcome>, LabError> {
    for p in probes {
        check_address(*p.src.ip())?;
        check_address(*p.dst.ip())?;
    }
    let mut fds: HashMap<&str, File> = HashMap::new();
    for p in probes {
        if !fds.contains_key(p.from_ns.as_str()) {
            fds.insert(p.from_ns.as_str(), open_ns(&p.from_ns)?);
        }
    }
    let results: Mutex<Vec<Option<std::io::Result<Outcome>>>> =
        Mutex::new((0..probes.len()).map(|_| None).collect());
    let next = AtomicUsize::new(0);
    let workers = concurrency.clamp(1, probes.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                let mut current: Option<&str> = None;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(p) = probes.get(i) else { break };
                    let r = (|| {
                        if current != Some(p.from_ns.as_str()) {
                            enter(&fds[p.from_ns.as_str()])?;
                            current = Some(p.from_ns.as_str());
                        }
                        connect_once(p, timeout)
                    })();
                    results.lock().expect("results lock")[i] = Some(r);
                }
            });
        }
    });
    results
        .into_inner()
        .expect("results lock")
        .into_iter()
        .map(|r| r.expect("every probe ran").map_err(LabError::Io))
        .collect()
}
