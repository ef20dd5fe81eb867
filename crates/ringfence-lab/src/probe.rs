//! TCP listeners in destination namespaces and TCP connect probes from source
//! namespaces, classified by evidence.

use crate::engine::{Attempt, Pace, Timing};
use crate::netns::open_ns;
use crate::udp::response_for;
use crate::{check_address, LabError};
use rustix::event::epoll;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::collections::HashMap;
use std::fs::File;
use std::net::{SocketAddrV4, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// What the kernel did with one probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// TCP: the handshake completed. UDP: the responder's answer came
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
    /// A UDP request (DNS- or NTP-shaped to 53 and 123, otherwise empty) to a responder.
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

    /// TCP listeners on `tcp` and UDP responders on `udp`: a DNS query to 53
    /// gets a DNS response, an NTP client packet to 123 an NTP server packet,
    /// anything else is echoed (see [`response_for`]).
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
                        let port = u.local_addr().map_or(0, |a| a.port());
                        while let Ok((n, from)) = u.recv_from(&mut buf) {
                            let _ = u.send_to(&response_for(port, &buf[..n]), from);
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
pub(crate) fn raise_fd_limit(need: usize) {
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

/// How many descriptors this process may still open for sockets: the soft
/// open-file limit after raising it towards `want` (as far as the hard limit
/// allows), less a margin for everything else the process holds.
pub(crate) fn fd_budget(want: usize) -> usize {
    raise_fd_limit(want + FD_MARGIN);
    let cur = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    cur.map_or(want, |c| (c as usize).saturating_sub(FD_MARGIN).max(1))
}

/// Descriptors kept free for everything but the probe window.
const FD_MARGIN: usize = 64;

/// Run every probe (up to `concurrency` sockets in flight, on one thread
/// driven by epoll) and return the outcomes in order. Each attempt is a
/// single SYN or UDP request: `timeout` should stay below the first
/// retransmission (1 s); a few hundred milliseconds is plenty in a lab.
pub fn probe_all(
    probes: &[Probe],
    timeout: Duration,
    concurrency: usize,
) -> Result<Vec<Outcome>, LabError> {
    probe_all_progress(probes, timeout, concurrency, &|_, _| {})
}

/// [`probe_all`], calling `progress(done, total)` now and then.
pub(crate) fn probe_all_progress(
    probes: &[Probe],
    timeout: Duration,
    concurrency: usize,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Vec<Outcome>, LabError> {
    for p in probes {
        check_address(*p.src.ip())?;
        check_address(*p.dst.ip())?;
    }
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut fds: Vec<File> = Vec::new();
    let mut attempts = Vec::with_capacity(probes.len());
    for p in probes {
        let ns = match index.get(p.from_ns.as_str()) {
            Some(&i) => i,
            None => {
                fds.push(open_ns(&p.from_ns)?);
                index.insert(p.from_ns.as_str(), fds.len() - 1);
                fds.len() - 1
            }
        };
        attempts.push(Attempt {
            ns: Some(ns),
            src: Some(p.src),
            dst: p.dst,
            transport: p.transport,
        });
    }
    // A single attempt decides (see the kernel notes): the lab compares a
    // drop with a prediction, and retrying every drop would double its cost.
    let pace = Pace {
        window: concurrency,
        initial_window: concurrency,
        timing: Timing::Fixed(timeout),
        rate: 0,
        retries: 0,
        max_retries: 0,
    };
    // The engine enters the source namespaces: on a thread of its own, so
    // the caller's thread stays where it is.
    let out = std::thread::scope(|s| {
        s.spawn(|| {
            crate::engine::run(&attempts, &fds, pace, &|t: crate::Tally| {
                progress(t.done, t.total)
            })
        })
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("probe thread panicked")))
    })?;
    out.0.into_iter().map(|r| r.map_err(LabError::Io)).collect()
}
