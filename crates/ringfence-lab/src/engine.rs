//! The one probe engine: non-blocking TCP connects and UDP requests driven
//! by a single epoll loop over a bounded window of sockets in flight.
//!
//! No thread or task per probe: the calling thread opens up to `window`
//! sockets, waits on one epoll set, classifies each socket as soon as the
//! kernel reports it (a reset or ICMP error is final at once, a completed
//! handshake too), closes it and opens the next. Deadlines are kept in start
//! order (every probe has the same timeout), so the oldest socket is always
//! the next to expire. An optional rate caps how many probes start per second.
//!
//! Used by `ringfence probe` (sockets in the current namespace, unbound
//! source) and by the kernel harness and site lab (each probe from its own
//! namespace with a bound source address and port).

use crate::probe::{Outcome, Transport};
use crate::udp::request_for;
use rustix::event::epoll;
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketFlags, SocketType};
use std::collections::VecDeque;
use std::fs::File;
use std::net::SocketAddrV4;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

/// One attempt for the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Attempt {
    /// Index into the namespace handles given to [`run`] (`None`: the
    /// namespace the engine's thread is in).
    pub ns: Option<usize>,
    /// Source address and port to bind first (`None`: the kernel picks).
    pub src: Option<SocketAddrV4>,
    /// Destination.
    pub dst: SocketAddrV4,
    /// TCP connect or UDP request.
    pub transport: Transport,
}

/// How hard the engine pushes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pace {
    /// Sockets in flight at most.
    pub window: usize,
    /// How long one attempt waits for an answer.
    pub timeout: Duration,
    /// Attempts started per second at most (0: no limit).
    pub rate: u32,
    /// How many more times an attempt that got no answer is tried (a busy
    /// host can defer a reply past the timeout; nmap retries too).
    pub retries: u8,
}

/// A socket slot of the window. A TCP socket whose connect was refused is
/// back in the unconnected state and is reused for the next connect (Linux
/// allows it): no socket(2), close(2) or epoll registration per refusal,
/// which is most of a scan's probes.
struct Slot {
    fd: Option<OwnedFd>,
    /// The namespace the socket was made in.
    ns: Option<usize>,
    /// The attempt in flight on this socket.
    busy: Option<usize>,
}

/// Run every attempt and return its outcome, in order. A per-attempt local
/// error (a source address in use, no route at all) is that attempt's `Err`;
/// the whole run fails only when the engine itself cannot work (epoll,
/// entering a namespace). `progress(done, total)` is called now and then.
///
/// Most of a probe's cost is the kernel's (the SYN's path and its answer are
/// processed in the sender's system call), so large runs are split over up
/// to one thread per core, each with its own share of the window and rate;
/// attempt `i` goes to thread `i mod n`. Threads start in the caller's
/// namespace and may change their own.
pub(crate) fn run(
    attempts: &[Attempt],
    namespaces: &[File],
    pace: Pace,
    progress: &mut (dyn FnMut(usize, usize) + Send),
) -> std::io::Result<Vec<std::io::Result<Outcome>>> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let n = cores
        .min(MAX_THREADS)
        .min(attempts.len() / MIN_PER_THREAD)
        .min(pace.window)
        .min(if pace.rate == 0 {
            usize::MAX
        } else {
            pace.rate as usize
        })
        .max(1);
    if n == 1 {
        return run_one(attempts, namespaces, pace, progress);
    }
    // Shares round down: together the threads never exceed the window or
    // the rate (n is at most both, so every share is at least 1).
    let share = Pace {
        window: pace.window / n,
        timeout: pace.timeout,
        rate: pace.rate / n as u32,
        retries: pace.retries,
    };
    let total = attempts.len();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let progress = std::sync::Mutex::new(progress);
    let parts: Vec<std::io::Result<Vec<std::io::Result<Outcome>>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|t| {
                let mine: Vec<Attempt> = attempts.iter().skip(t).step_by(n).copied().collect();
                let (done, progress) = (&done, &progress);
                s.spawn(move || {
                    let mut last = 0;
                    run_one(&mine, namespaces, share, &mut |d, _| {
                        let all = done.fetch_add(d - last, std::sync::atomic::Ordering::Relaxed)
                            + (d - last);
                        last = d;
                        if let Ok(mut p) = progress.lock() {
                            (*p)(all.min(total), total);
                        }
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("probe thread panicked")))
            })
            .collect()
    });
    let mut parts = parts
        .into_iter()
        .map(|p| p.map(Vec::into_iter))
        .collect::<std::io::Result<Vec<_>>>()?;
    Ok((0..total)
        .map(|i| parts[i % n].next().expect("every attempt finished"))
        .collect())
}

/// Threads at most, and attempts per thread at least, for a split run.
const MAX_THREADS: usize = 4;
const MIN_PER_THREAD: usize = 512;

fn run_one(
    attempts: &[Attempt],
    namespaces: &[File],
    pace: Pace,
    progress: &mut (dyn FnMut(usize, usize) + Send),
) -> std::io::Result<Vec<std::io::Result<Outcome>>> {
    let mut e = Engine {
        attempts,
        namespaces,
        pace,
        ep: epoll::create(epoll::CreateFlags::CLOEXEC)?,
        slots: Vec::new(),
        free: Vec::new(),
        deadlines: VecDeque::new(),
        results: (0..attempts.len()).map(|_| None).collect(),
        next: 0,
        started: 0,
        retry: VecDeque::new(),
        tries: vec![0; attempts.len()],
        done: 0,
        current_ns: None,
        start: Instant::now(),
    };
    let window = pace.window.clamp(1, attempts.len().max(1));
    crate::probe::raise_fd_limit(window + 64);
    e.slots = (0..window)
        .map(|_| Slot {
            fd: None,
            ns: None,
            busy: None,
        })
        .collect();
    e.free = (0..window).rev().collect();
    e.deadlines = VecDeque::with_capacity(window);
    e.drive(progress)?;
    Ok(e.results
        .into_iter()
        .map(|r| r.expect("every attempt finished"))
        .collect())
}

struct Engine<'a> {
    attempts: &'a [Attempt],
    namespaces: &'a [File],
    pace: Pace,
    ep: OwnedFd,
    slots: Vec<Slot>,
    /// Slots with nothing in flight (and no socket).
    free: Vec<usize>,
    /// (deadline, slot, attempt) in start order.
    deadlines: VecDeque<(Instant, usize, usize)>,
    results: Vec<Option<std::io::Result<Outcome>>>,
    next: usize,
    /// Starts so far (first tries and retries), for the rate.
    started: usize,
    /// Attempts that timed out and are tried again, before new ones.
    retry: VecDeque<usize>,
    /// Retries made per attempt.
    tries: Vec<u8>,
    done: usize,
    current_ns: Option<usize>,
    start: Instant,
}

impl Engine<'_> {
    /// When attempt `next` may start under the rate limit (`None`: now).
    fn not_before(&self, now: Instant) -> Option<Instant> {
        if self.pace.rate == 0 {
            return None;
        }
        let due =
            self.start + Duration::from_secs_f64(self.started as f64 / f64::from(self.pace.rate));
        (due > now).then_some(due)
    }

    fn finish(&mut self, i: usize, r: std::io::Result<Outcome>) {
        self.results[i] = Some(r);
        self.done += 1;
    }

    /// Whether an attempt waits to start.
    fn pending(&self) -> bool {
        !self.retry.is_empty() || self.next < self.attempts.len()
    }

    /// Start the next attempt (a retry first) on slot `k`, reusing its
    /// socket when it can. Returns false when the attempt finished at once
    /// (the slot is free again).
    fn start_next(&mut self, k: usize, now: Instant) -> std::io::Result<bool> {
        let i = match self.retry.pop_front() {
            Some(i) => i,
            None => {
                self.next += 1;
                self.next - 1
            }
        };
        self.started += 1;
        let a = self.attempts[i];
        if a.ns != self.current_ns {
            if let Some(n) = a.ns {
                crate::netns::enter(&self.namespaces[n])?;
            }
            self.current_ns = a.ns;
        }
        let slot = &mut self.slots[k];
        let reuse = a.transport == Transport::Tcp && a.src.is_none() && slot.ns == a.ns;
        if !reuse {
            slot.fd = None;
        }
        let started = match slot.fd.take() {
            Some(fd) => connect_tcp(fd, a.dst),
            None => start_one(&a).map(|st| match st {
                Started::Pending(fd) => Started::New(fd),
                other => other,
            }),
        };
        match started {
            Ok(Started::Pending(fd)) => {
                // Still registered under this slot.
                slot.fd = Some(fd);
            }
            Ok(Started::New(fd)) => {
                epoll::add(
                    &self.ep,
                    &fd,
                    epoll::EventData::new_u64(k as u64),
                    match a.transport {
                        Transport::Tcp => epoll::EventFlags::OUT,
                        Transport::Udp => epoll::EventFlags::IN,
                    },
                )?;
                slot.fd = Some(fd);
            }
            Ok(Started::Done(o)) => {
                self.finish(i, Ok(o));
                return Ok(false);
            }
            Err(e) => {
                self.finish(i, Err(e));
                return Ok(false);
            }
        }
        slot.ns = a.ns;
        slot.busy = Some(i);
        self.deadlines.push_back((now + self.pace.timeout, k, i));
        Ok(true)
    }

    /// Keep slot `k` (whose socket is idle and reusable) busy, or close it.
    fn refill_or_close(&mut self, k: usize, now: Instant) -> std::io::Result<()> {
        while self.pending() && self.not_before(now).is_none() {
            if self.start_next(k, now)? {
                return Ok(());
            }
        }
        self.slots[k].fd = None;
        self.free.push(k);
        Ok(())
    }

    fn drive(&mut self, progress: &mut (dyn FnMut(usize, usize) + Send)) -> std::io::Result<()> {
        let total = self.attempts.len();
        let blank = epoll::Event {
            flags: epoll::EventFlags::empty(),
            data: epoll::EventData::new_u64(0),
        };
        let mut events = vec![blank; self.slots.len().min(1024)];
        let mut reported = 0usize;
        while self.done < total {
            // Fill free slots (as far as the rate allows).
            let now = Instant::now();
            while self.pending() && self.not_before(now).is_none() {
                let Some(k) = self.free.pop() else { break };
                if !self.start_next(k, now)? {
                    self.free.push(k);
                }
            }
            // Expire the oldest attempts.
            let now = Instant::now();
            while let Some(&(at, k, i)) = self.deadlines.front() {
                if self.slots[k].busy != Some(i) {
                    self.deadlines.pop_front();
                    continue;
                }
                if at > now {
                    break;
                }
                self.deadlines.pop_front();
                self.slots[k].busy = None;
                self.slots[k].fd = None;
                self.free.push(k);
                if self.tries[i] < self.pace.retries {
                    self.tries[i] += 1;
                    self.retry.push_back(i);
                } else {
                    self.finish(i, Ok(Outcome::Timeout));
                }
            }
            if self.done >= reported + 256 {
                progress(self.done, total);
                reported = self.done;
            }
            if self.done == total {
                break;
            }
            let wake = self.pending().then(|| self.not_before(now)).flatten();
            let Some(until) = self
                .deadlines
                .front()
                .map(|d| d.0)
                .into_iter()
                .chain(wake)
                .min()
            else {
                // Nothing in flight and nothing held back: the fill loop runs again.
                continue;
            };
            let wait = until.saturating_duration_since(Instant::now());
            let ts = rustix::event::Timespec {
                tv_sec: wait.as_secs() as i64,
                tv_nsec: i64::from(wait.subsec_nanos()),
            };
            let n = match epoll::wait(&self.ep, &mut events[..], Some(&ts)) {
                Ok(n) => n,
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            };
            let now = Instant::now();
            for ev in &events[..n] {
                let k = ev.data.u64() as usize;
                let (Some(i), Some(fd)) = (self.slots[k].busy, self.slots[k].fd.as_ref()) else {
                    continue;
                };
                let a = &self.attempts[i];
                let (outcome, keep) = match a.transport {
                    Transport::Tcp => match tcp_result(fd, a.dst) {
                        None => continue,
                        Some((Ok(Outcome::Refused), reusable)) => {
                            (Ok(Outcome::Refused), reusable && a.src.is_none())
                        }
                        Some((r, _)) => (r, false),
                    },
                    Transport::Udp => match udp_result(fd) {
                        None => continue,
                        Some(r) => (r, false),
                    },
                };
                self.slots[k].busy = None;
                self.finish(i, outcome);
                if keep {
                    self.refill_or_close(k, now)?;
                } else {
                    // Closing the socket also removes it from the epoll set.
                    self.slots[k].fd = None;
                    self.free.push(k);
                }
            }
        }
        if reported != total {
            progress(total, total);
        }
        Ok(())
    }
}

enum Started {
    /// In progress on a socket already registered with epoll.
    Pending(OwnedFd),
    /// In progress on a new socket.
    New(OwnedFd),
    Done(Outcome),
}

/// Connect an unconnected TCP socket (new, or back from a refusal).
fn connect_tcp(fd: OwnedFd, dst: SocketAddrV4) -> std::io::Result<Started> {
    match rustix::net::connect(&fd, &dst) {
        Err(Errno::INPROGRESS) => Ok(Started::Pending(fd)),
        Ok(()) => {
            reset_on_close(&fd);
            Ok(Started::Done(Outcome::Connected))
        }
        Err(e) => classify(e).map(Started::Done),
    }
}

fn start_one(a: &Attempt) -> std::io::Result<Started> {
    let ty = match a.transport {
        Transport::Tcp => SocketType::STREAM,
        Transport::Udp => SocketType::DGRAM,
    };
    let fd = rustix::net::socket_with(
        AddressFamily::INET,
        ty,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )?;
    if let Some(src) = a.src {
        rustix::net::sockopt::set_socket_reuseaddr(&fd, true)?;
        rustix::net::bind(&fd, &src)?;
    }
    match a.transport {
        Transport::Tcp => connect_tcp(fd, a.dst),
        Transport::Udp => {
            // A connected UDP socket reports ICMP errors on receive; without
            // IP_RECVERR only "hard" ones (port unreachable, admin
            // prohibited), so `reject with icmp host-unreachable` would look
            // like a drop.
            set_recverr(&fd)?;
            if let Err(e) = rustix::net::connect(&fd, &a.dst) {
                return classify(e).map(Started::Done);
            }
            match rustix::net::send(
                &fd,
                &request_for(a.dst.port()),
                rustix::net::SendFlags::empty(),
            ) {
                Ok(_) => Ok(Started::Pending(fd)),
                Err(e) => classify(e).map(Started::Done),
            }
        }
    }
}

/// Close an established probe connection with a reset: no FIN exchange and
/// no TIME_WAIT left behind for its source port.
fn reset_on_close(fd: &OwnedFd) {
    let _ = rustix::net::sockopt::set_socket_linger(fd, Some(Duration::ZERO));
}

/// The result of a connect in flight, read by asking connect(2) again: it
/// returns 0 once connected, or the error (and leaves a refused socket
/// unconnected, ready for the next connect). Still in progress: an ICMP
/// error that arrived while the socket was busy in a system call is kept as
/// a "soft" error only (the kernel handles a SYN's answer inside the
/// sender's connect(2) on a veth path), so SO_ERROR is asked too; such a
/// socket is not reused. `None`: still in progress, keep waiting.
fn tcp_result(fd: &OwnedFd, dst: SocketAddrV4) -> Option<(std::io::Result<Outcome>, bool)> {
    match rustix::net::connect(fd, &dst) {
        Ok(()) | Err(Errno::ISCONN) => {
            reset_on_close(fd);
            Some((Ok(Outcome::Connected), false))
        }
        Err(Errno::ALREADY | Errno::INPROGRESS) => match rustix::net::sockopt::socket_error(fd) {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some((classify(e), false)),
            Err(e) => Some((Err(e.into()), false)),
        },
        Err(e) => Some((classify(e), true)),
    }
}

/// `None`: a spurious wakeup, keep waiting.
fn udp_result(fd: &OwnedFd) -> Option<std::io::Result<Outcome>> {
    let mut buf = [0u8; 512];
    match rustix::net::recv(fd, &mut buf[..], rustix::net::RecvFlags::DONTWAIT) {
        Ok(_) => Some(Ok(Outcome::Connected)),
        Err(Errno::AGAIN) => None,
        Err(e) => Some(classify(e)),
    }
}

/// A reset, port unreachable, host/net unreachable, administratively
/// prohibited or a protocol error is a refusal; a timeout is a drop; the
/// rest is a local error.
fn classify(e: Errno) -> std::io::Result<Outcome> {
    match e {
        Errno::CONNREFUSED
        | Errno::HOSTUNREACH
        | Errno::NETUNREACH
        | Errno::ACCESS
        | Errno::PROTO => Ok(Outcome::Refused),
        Errno::TIMEDOUT => Ok(Outcome::Timeout),
        e => Err(e.into()),
    }
}

fn set_recverr(fd: &OwnedFd) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let one: libc::c_int = 1;
    // SAFETY: a valid open socket descriptor, and a pointer to a c_int that
    // lives across the call with its exact size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_fd().as_raw_fd(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, UdpSocket};

    fn pace() -> Pace {
        Pace {
            window: 8,
            timeout: Duration::from_millis(300),
            rate: 0,
            retries: 0,
        }
    }

    #[test]
    fn loopback_connects_refusals_and_udp_answers_are_told_apart() {
        // Loopback only: the one place a probe may go from the root namespace.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let open = match l.local_addr().unwrap() {
            std::net::SocketAddr::V4(a) => a,
            _ => unreachable!(),
        };
        let closed = {
            let t = TcpListener::bind("127.0.0.1:0").unwrap();
            match t.local_addr().unwrap() {
                std::net::SocketAddr::V4(a) => a,
                _ => unreachable!(),
            }
        };
        let echo = UdpSocket::bind("127.0.0.1:0").unwrap();
        let uaddr = match echo.local_addr().unwrap() {
            std::net::SocketAddr::V4(a) => a,
            _ => unreachable!(),
        };
        let t = std::thread::spawn(move || {
            let mut b = [0u8; 64];
            let (n, from) = echo.recv_from(&mut b).unwrap();
            echo.send_to(&b[..n], from).unwrap();
        });
        let a = |dst, transport| Attempt {
            ns: None,
            src: None,
            dst,
            transport,
        };
        let attempts = [
            a(open, Transport::Tcp),
            a(closed, Transport::Tcp),
            a(uaddr, Transport::Udp),
            a(closed, Transport::Udp),
        ];
        let mut calls = 0;
        let got = run(&attempts, &[], pace(), &mut |_, _| calls += 1).unwrap();
        let got: Vec<Outcome> = got.into_iter().map(Result::unwrap).collect();
        assert_eq!(
            got,
            vec![
                Outcome::Connected,
                Outcome::Refused,
                Outcome::Connected,
                Outcome::Refused
            ]
        );
        assert!(calls >= 1);
        t.join().unwrap();
    }

    #[test]
    fn refused_sockets_are_reused_and_later_answers_stay_right() {
        // A window of 4 over 1200 attempts: refused sockets are reconnected
        // many times; every 7th attempt goes to a listener. 1200 attempts
        // are split over threads on a machine with several cores, and the
        // answers still come back in order.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = |l: &TcpListener| match l.local_addr().unwrap() {
            std::net::SocketAddr::V4(a) => a,
            _ => unreachable!(),
        };
        let open = addr(&l);
        let closed = addr(&TcpListener::bind("127.0.0.1:0").unwrap());
        // Accept (and drop) forever so the backlog never fills; the thread
        // ends with the test process.
        std::thread::spawn(move || {
            for c in l.incoming() {
                drop(c);
            }
        });
        let attempts: Vec<Attempt> = (0..1200)
            .map(|i| Attempt {
                ns: None,
                src: None,
                dst: if i % 7 == 0 { open } else { closed },
                transport: Transport::Tcp,
            })
            .collect();
        let got = run(
            &attempts,
            &[],
            Pace {
                window: 4,
                timeout: Duration::from_millis(2000),
                rate: 0,
                retries: 0,
            },
            &mut |_, _| {},
        )
        .unwrap();
        for (i, r) in got.into_iter().enumerate() {
            let want = if i % 7 == 0 {
                Outcome::Connected
            } else {
                Outcome::Refused
            };
            assert_eq!(r.unwrap(), want, "attempt {i}");
        }
    }

    #[test]
    fn a_silent_udp_port_is_retried_then_times_out_and_the_rate_spaces_out_starts() {
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let dst = match silent.local_addr().unwrap() {
            std::net::SocketAddr::V4(a) => a,
            _ => unreachable!(),
        };
        let attempts: Vec<Attempt> = (0..3)
            .map(|_| Attempt {
                ns: None,
                src: None,
                dst,
                transport: Transport::Udp,
            })
            .collect();
        let t0 = Instant::now();
        let got = run(
            &attempts,
            &[],
            Pace {
                window: 8,
                timeout: Duration::from_millis(50),
                rate: 20,
                retries: 1,
            },
            &mut |_, _| {},
        )
        .unwrap();
        assert!(got.iter().all(|r| matches!(r, Ok(Outcome::Timeout))));
        // Three attempts, each tried twice: six starts at 20/s, the last
        // one 250 ms in, and it waits out its 50 ms.
        assert!(t0.elapsed() >= Duration::from_millis(300));
    }
}
