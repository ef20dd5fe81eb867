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
}

struct InFlight {
    fd: OwnedFd,
    transport: Transport,
}

/// Run every attempt and return its outcome, in order. A per-attempt local
/// error (a source address in use, no route at all) is that attempt's `Err`;
/// the whole run fails only when the engine itself cannot work (epoll,
/// entering a namespace). `progress(done, total)` is called now and then.
/// Must run on a thread that may change namespaces if any attempt names one.
pub(crate) fn run(
    attempts: &[Attempt],
    namespaces: &[File],
    pace: Pace,
    progress: &mut dyn FnMut(usize, usize),
) -> std::io::Result<Vec<std::io::Result<Outcome>>> {
    let total = attempts.len();
    let window = pace.window.clamp(1, total.max(1));
    crate::probe::raise_fd_limit(window + 64);
    let ep = epoll::create(epoll::CreateFlags::CLOEXEC)?;
    let mut results: Vec<Option<std::io::Result<Outcome>>> = (0..total).map(|_| None).collect();
    let mut inflight: Vec<Option<InFlight>> = (0..total).map(|_| None).collect();
    let mut deadlines: VecDeque<(Instant, usize)> = VecDeque::with_capacity(window);
    let blank = epoll::Event {
        flags: epoll::EventFlags::empty(),
        data: epoll::EventData::new_u64(0),
    };
    let mut events = vec![blank; window.min(1024)];
    let mut next = 0usize;
    let mut open = 0usize;
    let mut done = 0usize;
    let mut current_ns: Option<usize> = None;
    let start = Instant::now();
    let per = (pace.rate > 0).then(|| Duration::from_secs_f64(1.0 / f64::from(pace.rate)));
    let mut reported = 0usize;
    while done < total {
        // Fill the window (as far as the rate allows).
        let now = Instant::now();
        let mut wake: Option<Instant> = None;
        while open < window && next < total {
            if let Some(per) = per {
                let due = start + per.mul_f64(next as f64);
                if due > now {
                    wake = Some(due);
                    break;
                }
            }
            let a = &attempts[next];
            if a.ns != current_ns {
                if let Some(i) = a.ns {
                    crate::netns::enter(&namespaces[i])?;
                }
                current_ns = a.ns;
            }
            match start_one(a) {
                Ok(Started::Pending(fd)) => {
                    epoll::add(
                        &ep,
                        &fd,
                        epoll::EventData::new_u64(next as u64),
                        match a.transport {
                            Transport::Tcp => epoll::EventFlags::OUT,
                            Transport::Udp => epoll::EventFlags::IN,
                        },
                    )?;
                    inflight[next] = Some(InFlight {
                        fd,
                        transport: a.transport,
                    });
                    deadlines.push_back((now + pace.timeout, next));
                    open += 1;
                }
                Ok(Started::Done(o)) => {
                    results[next] = Some(Ok(o));
                    done += 1;
                }
                Err(e) => {
                    results[next] = Some(Err(e));
                    done += 1;
                }
            }
            next += 1;
        }
        // Expire the oldest sockets.
        let now = Instant::now();
        while let Some(&(at, i)) = deadlines.front() {
            if inflight[i].is_none() {
                deadlines.pop_front();
                continue;
            }
            if at > now {
                break;
            }
            deadlines.pop_front();
            inflight[i] = None;
            results[i] = Some(Ok(Outcome::Timeout));
            open -= 1;
            done += 1;
        }
        if done >= reported + 256 || done == total {
            progress(done, total);
            reported = done;
        }
        if done == total {
            break;
        }
        if open == 0 {
            // Only the rate holds the next start back.
            if let Some(w) = wake {
                std::thread::sleep(w.saturating_duration_since(Instant::now()));
            }
            continue;
        }
        let until = deadlines
            .front()
            .map(|&(at, _)| at)
            .into_iter()
            .chain(wake)
            .min()
            .expect("a socket in flight has a deadline");
        let wait = until.saturating_duration_since(Instant::now());
        let ts = rustix::event::Timespec {
            tv_sec: wait.as_secs() as i64,
            tv_nsec: i64::from(wait.subsec_nanos()),
        };
        let n = match epoll::wait(&ep, &mut events[..], Some(&ts)) {
            Ok(n) => n,
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        };
        for ev in &events[..n] {
            let i = ev.data.u64() as usize;
            let Some(f) = inflight[i].as_ref() else {
                continue;
            };
            let outcome = match f.transport {
                Transport::Tcp => tcp_result(&f.fd),
                Transport::Udp => match udp_result(&f.fd) {
                    None => continue,
                    Some(o) => o,
                },
            };
            // Closing the socket also removes it from the epoll set.
            inflight[i] = None;
            results[i] = Some(outcome);
            open -= 1;
            done += 1;
        }
    }
    if reported != total {
        progress(total, total);
    }
    Ok(results
        .into_iter()
        .map(|r| r.expect("every attempt finished"))
        .collect())
}

enum Started {
    Pending(OwnedFd),
    Done(Outcome),
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
        Transport::Tcp => match rustix::net::connect(&fd, &a.dst) {
            Err(Errno::INPROGRESS) => Ok(Started::Pending(fd)),
            Ok(()) => {
                reset_on_close(&fd);
                Ok(Started::Done(Outcome::Connected))
            }
            Err(e) => classify(e).map(Started::Done),
        },
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

fn tcp_result(fd: &OwnedFd) -> std::io::Result<Outcome> {
    match rustix::net::sockopt::socket_error(fd)? {
        Ok(()) => {
            reset_on_close(fd);
            Ok(Outcome::Connected)
        }
        Err(e) => classify(e),
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
    fn a_silent_udp_port_times_out_and_the_rate_spaces_out_starts() {
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
            },
            &mut |_, _| {},
        )
        .unwrap();
        assert!(got.iter().all(|r| matches!(r, Ok(Outcome::Timeout))));
        // Three starts at 20/s: the last one starts 100 ms in.
        assert!(t0.elapsed() >= Duration::from_millis(150));
    }
}
