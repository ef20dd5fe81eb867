//! The one probe engine: non-blocking TCP connects and UDP requests driven
//! by a single epoll loop over a window of sockets in flight.
//!
//! No thread or task per probe: the calling thread opens sockets up to the
//! window, waits on one epoll set, classifies each socket as soon as the
//! kernel reports it (a reset or ICMP error is final at once, a completed
//! handshake too), closes it and opens the next. An optional rate caps how
//! many probes start per second.
//!
//! With [`Timing::Adaptive`] the wait for an answer comes from measurement
//! ([`crate::rtt`]): every answer is a round-trip sample for its destination
//! host and its /24; a probe is silent after `srtt + 4·rttvar` (clamped) of
//! its host, or of its /24 while the host has no sample, or the initial
//! timeout before either has one. The timeout is read when it is checked,
//! so probes already in flight profit from what later answers taught. In
//! flight probes are kept per host in start order, so each host's oldest
//! probe is the next of that host to expire. A silent probe is tried again
//! (`retries`); when an answer comes only on a retry (loss, or ICMP rate
//! limiting) the window halves and that /24's silent probes get as many
//! tries as the latest answer needed plus one (nmap's rule), up to
//! `max_retries`; a probe that used its tries waits on the /24's bench for
//! more (nmap's too) and is called silent only when nothing else is left.
//!
//! Used by `ringfence probe` (sockets in the current namespace, unbound
//! source) and by the kernel harness and site lab (each probe from its own
//! namespace with a bound source address and port, fixed timeout and window).

use crate::probe::{Outcome, Transport};
use crate::rtt::{RttBounds, RttEstimator, Window};
use crate::udp::request_for;
use rustix::event::epoll;
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketFlags, SocketType};
use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
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

/// How long an attempt waits for an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    /// Always this long (the lab's single attempt, or `--timeout`).
    Fixed(Duration),
    /// From measured round trips, within these bounds.
    Adaptive(RttBounds),
}

/// How hard the engine pushes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pace {
    /// Sockets in flight at most.
    pub window: usize,
    /// Sockets in flight at the start; the window grows from here to
    /// `window` while answers come (equal to `window`: a fixed window).
    pub initial_window: usize,
    /// How long one attempt waits for an answer.
    pub timing: Timing,
    /// Attempts started per second at most (0: no limit).
    pub rate: u32,
    /// How many more times an attempt that got no answer is tried (a busy
    /// host can defer a reply past the timeout; nmap retries too).
    pub retries: u8,
    /// With adaptive timing: the most retries a /24 that answered only on a
    /// retry can earn (at least `retries`).
    pub max_retries: u8,
}

/// Counts so far, for progress reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Attempts finished.
    pub done: usize,
    /// Attempts in all.
    pub total: usize,
    /// Finished with an answer (connected / UDP answer).
    pub connected: usize,
    /// Finished with a reset or ICMP error.
    pub refused: usize,
    /// Finished without an answer after every try.
    pub silent: usize,
}

/// What the engine measured and how it adapted, for reports and tests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineStats {
    /// Round-trip samples taken (one per answer).
    pub samples: u64,
    /// Answers that came only on a retry (each a loss signal).
    pub late_answers: u64,
    /// Attempts started again after a silent try.
    pub retries: u64,
    /// The most retries any /24 earned.
    pub max_retries_earned: u8,
    /// Window at the start (summed over threads).
    pub window_start: usize,
    /// The smallest window (summed over threads' smallest).
    pub window_low: usize,
    /// The largest window reached (summed over threads).
    pub window_high: usize,
    /// Times a window shrank on loss.
    pub shrinks: u32,
    /// Per destination host: smoothed RTT, deviation, the timeout now and
    /// the samples taken (the thread with the most samples, when split).
    pub hosts: Vec<HostTiming>,
}

/// One destination host's timing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HostTiming {
    /// The host.
    pub addr: Ipv4Addr,
    /// Smoothed RTT (`None`: no answer came back).
    pub srtt: Option<Duration>,
    /// Mean deviation.
    pub rttvar: Option<Duration>,
    /// The timeout a probe to it waits now.
    pub timeout: Duration,
    /// Answers measured.
    pub samples: u64,
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

/// Run every attempt and return its outcome, in order, and what the engine
/// measured. A per-attempt local error (a source address in use, no route
/// at all) is that attempt's `Err`; the whole run fails only when the
/// engine itself cannot work (epoll, entering a namespace).
/// `progress(tally)` is called now and then.
///
/// Most of a probe's cost is the kernel's (the SYN's path and its answer are
/// processed in the sender's system call), so large runs are split over up
/// to one thread per core, each with its own share of the window and rate
/// and its own estimates; attempt `i` goes to thread `i mod n`. Threads
/// start in the caller's namespace and may change their own.
pub(crate) fn run(
    attempts: &[Attempt],
    namespaces: &[File],
    pace: Pace,
    progress: &(dyn Fn(Tally) + Sync),
) -> std::io::Result<(Vec<std::io::Result<Outcome>>, EngineStats)> {
    // Never more sockets than the process may open.
    let budget = crate::probe::fd_budget(pace.window.min(attempts.len().max(1)));
    let pace = Pace {
        window: pace.window.min(budget),
        initial_window: pace.initial_window.min(budget),
        ..pace
    };
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
        return run_one(attempts, namespaces, pace, &|t: Tally| progress(t));
    }
    // Shares round down: together the threads never exceed the window or
    // the rate (n is at most both, so every share is at least 1).
    let share = Pace {
        window: pace.window / n,
        initial_window: (pace.initial_window / n).max(1),
        rate: pace.rate / n as u32,
        ..pace
    };
    let total = attempts.len();
    let sums: [AtomicUsize; 4] = Default::default();
    let parts: Vec<std::io::Result<_>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|t| {
                let mine: Vec<Attempt> = attempts.iter().skip(t).step_by(n).copied().collect();
                let sums = &sums;
                s.spawn(move || {
                    let last = std::cell::Cell::new(Tally::default());
                    run_one(&mine, namespaces, share, &|now: Tally| {
                        let was = last.replace(now);
                        let all = add_tally(sums, was, now, total);
                        progress(all);
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
    let mut stats = EngineStats::default();
    let mut outs = Vec::with_capacity(n);
    for p in parts {
        let (o, st) = p?;
        outs.push(o.into_iter());
        stats.merge(st);
    }
    Ok((
        (0..total)
            .map(|i| outs[i % n].next().expect("every attempt finished"))
            .collect(),
        stats,
    ))
}

/// Add one thread's change of counts (`was` to `now`) to the shared sums
/// and return the totals. A count can go down (a benched attempt tried
/// again), so deltas wrap, and so does the atomic sum.
fn add_tally(sums: &[AtomicUsize; 4], was: Tally, now: Tally, total: usize) -> Tally {
    let add = |k: usize, a: usize, b: usize| {
        let d = a.wrapping_sub(b);
        sums[k].fetch_add(d, Ordering::Relaxed).wrapping_add(d)
    };
    Tally {
        done: add(0, now.done, was.done).min(total),
        total,
        connected: add(1, now.connected, was.connected),
        refused: add(2, now.refused, was.refused),
        silent: add(3, now.silent, was.silent),
    }
}

impl EngineStats {
    fn merge(&mut self, o: EngineStats) {
        self.samples += o.samples;
        self.late_answers += o.late_answers;
        self.retries += o.retries;
        self.max_retries_earned = self.max_retries_earned.max(o.max_retries_earned);
        self.window_start += o.window_start;
        self.window_low += o.window_low;
        self.window_high += o.window_high;
        self.shrinks += o.shrinks;
        for h in o.hosts {
            match self.hosts.iter_mut().find(|x| x.addr == h.addr) {
                Some(x) if x.samples < h.samples => *x = h,
                Some(_) => {}
                None => self.hosts.push(h),
            }
        }
        self.hosts.sort_by_key(|h| h.addr);
    }
}

/// Threads at most, and attempts per thread at least, for a split run.
const MAX_THREADS: usize = 4;
const MIN_PER_THREAD: usize = 512;
/// Starts at most before the loop looks at answers again: answers are read
/// (and timed) while a large window fills, not after it.
const FILL_BATCH: usize = 64;
/// Progress is reported after this many attempts finish.
const PROGRESS_EVERY: usize = 256;
/// Round-trip estimates are kept per host and per network of this prefix length.
const NET_PREFIX: u32 = 24;

/// A destination host: its estimate and its probes in flight, in start order.
struct Host {
    addr: Ipv4Addr,
    net: usize,
    est: RttEstimator,
    /// (sent, slot, attempt); entries whose attempt moved on are skipped.
    queue: VecDeque<(Instant, usize, usize)>,
    /// In the engine's list of hosts with probes in flight.
    listed: bool,
}

/// A destination /24: its estimate and the tries its answers needed.
#[derive(Default)]
struct Net {
    est: RttEstimator,
    /// The highest try (0: the first) that got an answer.
    answered_try: u8,
    /// Silent attempts that used every try allowed so far, kept (nmap's
    /// "bench") in case a late answer lets this network earn more tries;
    /// called silent once nothing else is left.
    bench: Vec<usize>,
}

fn run_one(
    attempts: &[Attempt],
    namespaces: &[File],
    pace: Pace,
    progress: &dyn Fn(Tally),
) -> std::io::Result<(Vec<std::io::Result<Outcome>>, EngineStats)> {
    let max = pace.window.clamp(1, attempts.len().max(1));
    let window = if pace.initial_window >= pace.window {
        Window::fixed(max)
    } else {
        Window::new(pace.initial_window, max)
    };
    let mut host_index: HashMap<Ipv4Addr, usize> = HashMap::new();
    let mut net_index: HashMap<u32, usize> = HashMap::new();
    let mut hosts: Vec<Host> = Vec::new();
    let mut nets: Vec<Net> = Vec::new();
    let host_of: Vec<usize> = attempts
        .iter()
        .map(|a| {
            let ip = *a.dst.ip();
            *host_index.entry(ip).or_insert_with(|| {
                let key = u32::from(ip) >> (32 - NET_PREFIX);
                let net = *net_index.entry(key).or_insert_with(|| {
                    nets.push(Net::default());
                    nets.len() - 1
                });
                hosts.push(Host {
                    addr: ip,
                    net,
                    est: RttEstimator::new(),
                    queue: VecDeque::new(),
                    listed: false,
                });
                hosts.len() - 1
            })
        })
        .collect();
    let now = Instant::now();
    let mut e = Engine {
        attempts,
        namespaces,
        pace,
        ep: epoll::create(epoll::CreateFlags::CLOEXEC)?,
        slots: (0..max)
            .map(|_| Slot {
                fd: None,
                ns: None,
                busy: None,
            })
            .collect(),
        free: (0..max).rev().collect(),
        in_flight: 0,
        window,
        window_high: window.allowed(),
        hosts,
        nets,
        host_of,
        busy_hosts: Vec::new(),
        sent: vec![now; attempts.len()],
        results: (0..attempts.len()).map(|_| None).collect(),
        next: 0,
        started: 0,
        retry: VecDeque::new(),
        tries: vec![0; attempts.len()],
        resolved: 0,
        tally: Tally {
            total: attempts.len(),
            ..Tally::default()
        },
        stats: EngineStats {
            window_start: window.allowed(),
            ..EngineStats::default()
        },
        current_ns: None,
        start: now,
    };
    e.drive(progress)?;
    e.stats.window_low = e.window.low();
    e.stats.window_high = e.window_high;
    e.stats.shrinks = e.window.shrinks();
    e.stats.max_retries_earned = e
        .nets
        .iter()
        .map(|n| e.retries_for(n))
        .max()
        .unwrap_or(e.pace.retries);
    e.stats.hosts = e
        .hosts
        .iter()
        .map(|h| HostTiming {
            addr: h.addr,
            srtt: h.est.srtt(),
            rttvar: h.est.rttvar(),
            timeout: e.timeout_of(h),
            samples: h.est.samples(),
        })
        .collect();
    e.stats.hosts.sort_by_key(|h| h.addr);
    let stats = std::mem::take(&mut e.stats);
    Ok((
        e.results
            .into_iter()
            .map(|r| r.expect("every attempt finished"))
            .collect(),
        stats,
    ))
}

struct Engine<'a> {
    attempts: &'a [Attempt],
    namespaces: &'a [File],
    pace: Pace,
    ep: OwnedFd,
    slots: Vec<Slot>,
    /// Slots with nothing in flight (and no socket).
    free: Vec<usize>,
    in_flight: usize,
    window: Window,
    window_high: usize,
    hosts: Vec<Host>,
    nets: Vec<Net>,
    /// The destination host of each attempt.
    host_of: Vec<usize>,
    /// Hosts with probes in flight (their `listed` is set).
    busy_hosts: Vec<usize>,
    /// When each attempt's latest try started.
    sent: Vec<Instant>,
    results: Vec<Option<std::io::Result<Outcome>>>,
    next: usize,
    /// Starts so far (first tries and retries), for the rate.
    started: usize,
    /// Attempts that timed out and are tried again, before new ones.
    retry: VecDeque<usize>,
    /// Retries made per attempt.
    tries: Vec<u8>,
    /// Attempts with a result.
    resolved: usize,
    tally: Tally,
    stats: EngineStats,
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

    /// The timeout of a probe to `h` now.
    fn timeout_of(&self, h: &Host) -> Duration {
        match self.pace.timing {
            Timing::Fixed(d) => d,
            Timing::Adaptive(b) => {
                let net = &self.nets[h.net].est;
                if h.est.samples() > 0 {
                    h.est.timeout(&b)
                } else {
                    // The /24's estimate, or the initial timeout before it has one.
                    net.timeout(&b)
                }
            }
        }
    }

    /// Retries a silent attempt in network `n` gets.
    fn retries_for(&self, n: &Net) -> u8 {
        match self.pace.timing {
            Timing::Fixed(_) => self.pace.retries,
            Timing::Adaptive(_) => self
                .pace
                .retries
                .max(n.answered_try.saturating_add(1))
                .min(self.pace.max_retries.max(self.pace.retries)),
        }
    }

    fn finish(&mut self, i: usize, r: std::io::Result<Outcome>) {
        self.resolved += 1;
        match &r {
            Ok(Outcome::Connected) => self.tally.connected += 1,
            Ok(Outcome::Refused) => self.tally.refused += 1,
            Ok(Outcome::Timeout) => self.tally.silent += 1,
            Err(_) => {}
        }
        self.results[i] = Some(r);
        self.tally.done += 1;
    }

    /// An answer (connected or refused) to attempt `i` seen at `now`: a
    /// round-trip sample, and the window grows, or shrinks when the answer
    /// came only on a retry.
    fn answered(&mut self, i: usize, r: std::io::Result<Outcome>, now: Instant) {
        if matches!(r, Ok(Outcome::Connected | Outcome::Refused)) {
            let rtt = now.saturating_duration_since(self.sent[i]);
            let h = self.host_of[i];
            let n = self.hosts[h].net;
            self.hosts[h].est.sample(rtt);
            self.nets[n].est.sample(rtt);
            self.stats.samples += 1;
            let t = self.tries[i];
            if t == 0 {
                self.window.on_answer();
                self.window_high = self.window_high.max(self.window.allowed());
            } else {
                self.stats.late_answers += 1;
                let before = self.retries_for(&self.nets[n]);
                self.nets[n].answered_try = self.nets[n].answered_try.max(t);
                if self.retries_for(&self.nets[n]) > before {
                    // More tries earned: the benched attempts get them.
                    for b in std::mem::take(&mut self.nets[n].bench) {
                        self.tally.done -= 1;
                        self.tally.silent -= 1;
                        self.tries[b] += 1;
                        self.stats.retries += 1;
                        self.retry.push_back(b);
                    }
                }
                let hold = self.timeout_of(&self.hosts[h]);
                self.window.on_loss(self.in_flight, now, hold);
            }
        }
        self.finish(i, r);
    }

    /// Whether an attempt waits to start.
    fn pending(&self) -> bool {
        !self.retry.is_empty() || self.next < self.attempts.len()
    }

    /// Whether another attempt may start now (something waits, the window
    /// has room, the rate allows).
    fn may_start(&self, now: Instant) -> bool {
        self.pending() && self.in_flight < self.window.allowed() && self.not_before(now).is_none()
    }

    /// Start the next attempt (a retry first) on slot `k`, reusing its
    /// socket when it can. Returns false when the attempt finished at once
    /// (the slot is free again).
    fn start_next(&mut self, k: usize) -> std::io::Result<bool> {
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
        let sent = Instant::now();
        self.sent[i] = sent;
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
                self.answered(i, Ok(o), Instant::now());
                return Ok(false);
            }
            Err(e) => {
                self.finish(i, Err(e));
                return Ok(false);
            }
        }
        slot.ns = a.ns;
        slot.busy = Some(i);
        self.in_flight += 1;
        let h = self.host_of[i];
        self.hosts[h].queue.push_back((sent, k, i));
        if !self.hosts[h].listed {
            self.hosts[h].listed = true;
            self.busy_hosts.push(h);
        }
        Ok(true)
    }

    /// Keep slot `k` (whose socket is idle and reusable) busy, or close it.
    fn refill_or_close(&mut self, k: usize, now: Instant) -> std::io::Result<()> {
        while self.may_start(now) {
            if self.start_next(k)? {
                return Ok(());
            }
        }
        self.slots[k].fd = None;
        self.free.push(k);
        Ok(())
    }

    /// The attempt on slot `k` is over: keep its socket for the next
    /// connect (`keep`) or close it.
    fn release(&mut self, k: usize, keep: bool, now: Instant) -> std::io::Result<()> {
        self.slots[k].busy = None;
        self.in_flight -= 1;
        if keep {
            self.refill_or_close(k, now)
        } else {
            // Closing the socket also removes it from the epoll set.
            self.slots[k].fd = None;
            self.free.push(k);
            Ok(())
        }
    }

    /// The result of attempt `i` on slot `k` if its socket has one.
    fn poll_slot(&self, k: usize, i: usize) -> Option<(std::io::Result<Outcome>, bool)> {
        let fd = self.slots[k].fd.as_ref()?;
        let a = &self.attempts[i];
        match a.transport {
            Transport::Tcp => match tcp_result(fd, a.dst)? {
                (Ok(Outcome::Refused), reusable) => {
                    Some((Ok(Outcome::Refused), reusable && a.src.is_none()))
                }
                (r, _) => Some((r, false)),
            },
            Transport::Udp => udp_result(fd).map(|r| (r, false)),
        }
    }

    /// Expire what is due on every host with probes in flight; returns the
    /// next deadline.
    fn expire(&mut self, now: Instant) -> std::io::Result<Option<Instant>> {
        let mut next: Option<Instant> = None;
        let mut b = 0;
        while b < self.busy_hosts.len() {
            let h = self.busy_hosts[b];
            let timeout = self.timeout_of(&self.hosts[h]);
            while let Some(&(sent, k, i)) = self.hosts[h].queue.front() {
                if self.slots[k].busy != Some(i) || self.sent[i] != sent {
                    self.hosts[h].queue.pop_front();
                    continue;
                }
                let due = sent + timeout;
                if due > now {
                    next = Some(next.map_or(due, |n| n.min(due)));
                    break;
                }
                self.hosts[h].queue.pop_front();
                // An answer the loop has not read yet is still an answer.
                if let Some((r, keep)) = self.poll_slot(k, i) {
                    self.answered(i, r, now);
                    self.release(k, keep, now)?;
                    continue;
                }
                self.release(k, false, now)?;
                let n = self.hosts[h].net;
                let allowed = self.retries_for(&self.nets[n]);
                if self.tries[i] < allowed {
                    self.tries[i] += 1;
                    self.stats.retries += 1;
                    self.retry.push_back(i);
                } else if matches!(self.pace.timing, Timing::Adaptive(_))
                    && self.tries[i] < self.pace.max_retries
                {
                    // Counted as silent for progress; decided at the end.
                    self.nets[n].bench.push(i);
                    self.tally.done += 1;
                    self.tally.silent += 1;
                } else {
                    self.finish(i, Ok(Outcome::Timeout));
                }
            }
            if self.hosts[h].queue.is_empty() {
                self.hosts[h].listed = false;
                self.busy_hosts.swap_remove(b);
            } else {
                b += 1;
            }
        }
        Ok(next)
    }

    /// Only benched attempts are left. In a network that lost answers
    /// (one came only on a retry) they are tried once more each, up to
    /// `max_retries`: the stragglers of a rate-limited burst; elsewhere no
    /// answer can earn them another try, and they are silent.
    fn drain_bench(&mut self) {
        for n in 0..self.nets.len() {
            let lossy = self.nets[n].answered_try > 0;
            for i in std::mem::take(&mut self.nets[n].bench) {
                if lossy && self.tries[i] < self.pace.max_retries {
                    self.tally.done -= 1;
                    self.tally.silent -= 1;
                    self.tries[i] += 1;
                    self.stats.retries += 1;
                    self.retry.push_back(i);
                } else {
                    self.results[i] = Some(Ok(Outcome::Timeout));
                    self.resolved += 1;
                }
            }
        }
    }

    fn drive(&mut self, progress: &dyn Fn(Tally)) -> std::io::Result<()> {
        let total = self.attempts.len();
        let blank = epoll::Event {
            flags: epoll::EventFlags::empty(),
            data: epoll::EventData::new_u64(0),
        };
        let mut events = vec![blank; self.slots.len().clamp(1, 1024)];
        let mut reported = 0usize;
        while self.resolved < total {
            // Fill free slots (as far as the window and the rate allow), a
            // batch at a time.
            let now = Instant::now();
            let mut batch = 0;
            while batch < FILL_BATCH && self.may_start(now) {
                let Some(k) = self.free.pop() else { break };
                if !self.start_next(k)? {
                    self.free.push(k);
                }
                batch += 1;
            }
            let more = batch == FILL_BATCH && self.may_start(Instant::now());
            // Expire the oldest attempts.
            let now = Instant::now();
            let deadline = self.expire(now)?;
            if !self.pending() && self.in_flight == 0 {
                self.drain_bench();
            }
            if self.tally.done >= reported + PROGRESS_EVERY {
                progress(self.tally);
                reported = self.tally.done;
            }
            if self.resolved == total {
                break;
            }
            let wake = if self.pending() && self.in_flight < self.window.allowed() {
                self.not_before(now)
            } else {
                None
            };
            let wait = if more || self.may_start(Instant::now()) {
                Duration::ZERO
            } else {
                match deadline.into_iter().chain(wake).min() {
                    Some(until) => until.saturating_duration_since(Instant::now()),
                    // Nothing in flight and nothing held back: fill again.
                    None => continue,
                }
            };
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
                let Some(i) = self.slots[k].busy else {
                    continue;
                };
                let Some((outcome, keep)) = self.poll_slot(k, i) else {
                    continue;
                };
                self.answered(i, outcome, now);
                self.release(k, keep, now)?;
            }
        }
        if reported != total {
            progress(self.tally);
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
    use crate::rtt::RttBounds;
    use std::net::{TcpListener, UdpSocket};

    fn fixed(window: usize, ms: u64, rate: u32, retries: u8) -> Pace {
        Pace {
            window,
            initial_window: window,
            timing: Timing::Fixed(Duration::from_millis(ms)),
            rate,
            retries,
            max_retries: retries,
        }
    }

    fn pace() -> Pace {
        fixed(8, 300, 0, 0)
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
        let calls = AtomicUsize::new(0);
        let (got, stats) = run(&attempts, &[], pace(), &|_| {
            calls.fetch_add(1, Ordering::Relaxed);
        })
        .unwrap();
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
        assert!(calls.load(Ordering::Relaxed) >= 1);
        // Four answers (a refusal and an ICMP error are answers too), each
        // a round-trip sample of its host.
        assert_eq!(stats.samples, 4);
        assert_eq!(stats.hosts.len(), 1);
        assert_eq!(stats.hosts[0].samples, 4);
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
        let (got, _) = run(&attempts, &[], fixed(4, 2000, 0, 0), &|_| {}).unwrap();
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
        let (got, _) = run(&attempts, &[], fixed(8, 50, 20, 1), &|_| {}).unwrap();
        assert!(got.iter().all(|r| matches!(r, Ok(Outcome::Timeout))));
        // Three attempts, each tried twice: six starts at 20/s, the last
        // one 250 ms in, and it waits out its 50 ms.
        assert!(t0.elapsed() >= Duration::from_millis(300));
    }

    #[test]
    fn thread_tallies_add_up_even_when_a_count_goes_down() {
        let sums: [AtomicUsize; 4] = Default::default();
        let t = |done, silent| Tally {
            done,
            total: 10,
            silent,
            ..Tally::default()
        };
        // Thread A: 3 silent; thread B: 2 silent, then one of them is tried again.
        add_tally(&sums, t(0, 0), t(3, 3), 10);
        add_tally(&sums, t(0, 0), t(2, 2), 10);
        let all = add_tally(&sums, t(2, 2), t(1, 1), 10);
        assert_eq!((all.done, all.silent, all.total), (4, 4, 10));
    }

    #[test]
    fn adaptive_timing_learns_from_answers_and_a_silent_port_gets_one_retry() {
        // Loopback only. Answers from a listener teach the estimate; a
        // silent UDP port on the same host then waits the clamped floor,
        // not the initial timeout, is retried once and comes out silent.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let open = match l.local_addr().unwrap() {
            std::net::SocketAddr::V4(a) => a,
            _ => unreachable!(),
        };
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let quiet = match silent.local_addr().unwrap() {
            std::net::SocketAddr::V4(a) => a,
            _ => unreachable!(),
        };
        let bounds = RttBounds {
            initial: Duration::from_millis(2000),
            min: Duration::from_millis(50),
            max: Duration::from_millis(3000),
        };
        let mut attempts: Vec<Attempt> = (0..20)
            .map(|_| Attempt {
                ns: None,
                src: None,
                dst: open,
                transport: Transport::Tcp,
            })
            .collect();
        attempts.push(Attempt {
            ns: None,
            src: None,
            dst: quiet,
            transport: Transport::Udp,
        });
        let pace = Pace {
            window: 1,
            initial_window: 1,
            timing: Timing::Adaptive(bounds),
            rate: 0,
            retries: 1,
            max_retries: 10,
        };
        let (got, stats) = run(&attempts, &[], pace, &|_| {}).unwrap();
        assert!(got[..20]
            .iter()
            .all(|r| matches!(r, Ok(Outcome::Connected))));
        assert!(matches!(got[20], Ok(Outcome::Timeout)));
        assert_eq!(stats.samples, 20);
        assert_eq!(stats.retries, 1);
        assert_eq!(stats.late_answers, 0);
        let h = stats.hosts[0];
        assert!(h.srtt.is_some() && h.timeout < bounds.initial, "{h:?}");
        drop(l);
    }
}
