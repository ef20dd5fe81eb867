//! Timeouts and window from measurement, as TCP (RFC 6298) and nmap do.
//!
//! - [`RttEstimator`]: a smoothed round-trip time and its mean deviation from
//!   every answer that comes back (SYN-ACK, reset, ICMP error, UDP answer);
//!   a probe with no answer after `srtt + 4·rttvar`, clamped to
//!   [`RttBounds`], is silent. Before the first answer the conservative
//!   [`RttBounds::initial`] timeout applies.
//! - [`Window`]: how many probes may be in flight, congestion-window style:
//!   slow start (one more per answer) up to a threshold, then one more per
//!   window of answers; halved (at most once per timeout of the destination)
//!   when an answer comes only on a retry (a lost answer: loss, or a router
//!   rate-limiting its ICMP errors). Silence alone (a dropped port) changes
//!   nothing: a firewall that drops is no congestion.

use std::time::{Duration, Instant};

/// The bounds of the adaptive timeout (docs/lab.md, "How it probes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RttBounds {
    /// The timeout before any answer from the destination came back.
    pub initial: Duration,
    /// The adaptive timeout never goes below this.
    pub min: Duration,
    /// ... nor above this.
    pub max: Duration,
}

/// nmap's initial RTT timeout, conservative on purpose: 1 s is also TCP's
/// initial retransmission timeout (RFC 6298), so an answer slower than this
/// would not have come from a normal TCP peer either.
pub const INITIAL_TIMEOUT: Duration = Duration::from_millis(1000);
/// nmap's minimum RTT timeout: on a LAN or a veth the estimate is microseconds,
/// and a busy sender or receiver can defer an answer by tens of milliseconds.
pub const MIN_TIMEOUT: Duration = Duration::from_millis(100);
/// The longest wait for one attempt: an answer later than this is no answer.
pub const MAX_TIMEOUT: Duration = Duration::from_millis(3000);

impl Default for RttBounds {
    fn default() -> Self {
        RttBounds {
            initial: INITIAL_TIMEOUT,
            min: MIN_TIMEOUT,
            max: MAX_TIMEOUT,
        }
    }
}

/// Smoothed round-trip time and mean deviation (RFC 6298, section 2).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RttEstimator {
    /// Smoothed RTT in seconds.
    srtt: f64,
    /// Mean deviation in seconds.
    rttvar: f64,
    /// Samples taken.
    samples: u64,
}

/// RFC 6298's gains: alpha = 1/8 for the mean, beta = 1/4 for the deviation.
const ALPHA: f64 = 0.125;
const BETA: f64 = 0.25;
/// RFC 6298's K: the timeout is the mean plus K deviations.
const K: f64 = 4.0;

impl RttEstimator {
    /// A new estimator with no sample.
    pub fn new() -> Self {
        Self::default()
    }

    /// Take one measured round trip. The first sets `srtt = r`, `rttvar =
    /// r/2`; later ones `rttvar = 3/4·rttvar + 1/4·|srtt − r|`, then `srtt =
    /// 7/8·srtt + 1/8·r`.
    pub fn sample(&mut self, r: Duration) {
        let r = r.as_secs_f64();
        if self.samples == 0 {
            self.srtt = r;
            self.rttvar = r / 2.0;
        } else {
            self.rttvar = (1.0 - BETA) * self.rttvar + BETA * (self.srtt - r).abs();
            self.srtt = (1.0 - ALPHA) * self.srtt + ALPHA * r;
        }
        self.samples += 1;
    }

    /// Samples taken so far.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// The smoothed RTT (`None` before the first sample).
    pub fn srtt(&self) -> Option<Duration> {
        (self.samples > 0).then(|| Duration::from_secs_f64(self.srtt))
    }

    /// The mean deviation (`None` before the first sample).
    pub fn rttvar(&self) -> Option<Duration> {
        (self.samples > 0).then(|| Duration::from_secs_f64(self.rttvar))
    }

    /// `srtt + 4·rttvar` clamped to `[min, max]`, or `initial` before the
    /// first sample.
    pub fn timeout(&self, b: &RttBounds) -> Duration {
        if self.samples == 0 {
            return b.initial;
        }
        Duration::from_secs_f64(self.srtt + K * self.rttvar).clamp(b.min, b.max.max(b.min))
    }
}

/// How many probes the engine keeps in flight, adapted to answers and loss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    cwnd: f64,
    ssthresh: f64,
    min: f64,
    max: f64,
    /// Losses seen before this instant cannot shrink the window again (one
    /// reduction per round trip, as TCP does).
    recovery_until: Option<Instant>,
    /// Times the window shrank.
    shrinks: u32,
    /// The smallest the window has been.
    low: f64,
}

/// The fewest probes in flight after any loss.
pub const MIN_WINDOW: usize = 1;

impl Window {
    /// A window starting at `initial` probes, growing up to `max`
    /// (`initial` is clamped into `[MIN_WINDOW, max]`).
    pub fn new(initial: usize, max: usize) -> Self {
        let max = max.max(MIN_WINDOW) as f64;
        let initial = (initial as f64).clamp(MIN_WINDOW as f64, max);
        Window {
            cwnd: initial,
            ssthresh: max,
            min: MIN_WINDOW as f64,
            max,
            recovery_until: None,
            shrinks: 0,
            low: initial,
        }
    }

    /// A window that never changes (the lab's single-attempt harness).
    pub fn fixed(n: usize) -> Self {
        let mut w = Self::new(n, n);
        w.min = w.max;
        w
    }

    /// Probes allowed in flight now.
    pub fn allowed(&self) -> usize {
        self.cwnd as usize
    }

    /// An answer came back on the first try: grow (slow start below the
    /// threshold, then about one more per window of answers).
    pub fn on_answer(&mut self) {
        let step = if self.cwnd < self.ssthresh {
            1.0
        } else {
            1.0 / self.cwnd
        };
        self.cwnd = (self.cwnd + step).min(self.max);
    }

    /// An answer came only on a retry (the previous try's answer was lost):
    /// halve the window, at most once per `hold` (the destination's current
    /// timeout, about one round trip of probes): the losses of one burst
    /// are one signal, as TCP answers one window's losses once.
    pub fn on_loss(&mut self, in_flight: usize, now: Instant, hold: Duration) {
        if self.recovery_until.is_some_and(|t| now < t) || self.min >= self.max {
            return;
        }
        // Half of what was really in flight (TCP's flight size), but not
        // below what is in flight now nor above twice that: a window the
        // rate cap kept from filling is not halved from its unused top.
        let base = (in_flight as f64).max(self.cwnd.min(in_flight as f64 * 2.0));
        self.ssthresh = (base / 2.0).max(self.min);
        self.cwnd = self.ssthresh;
        self.low = self.low.min(self.cwnd);
        self.shrinks += 1;
        self.recovery_until = Some(now + hold);
    }

    /// Times the window shrank on loss.
    pub fn shrinks(&self) -> u32 {
        self.shrinks
    }

    /// The smallest the window has been.
    pub fn low(&self) -> usize {
        self.low as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_first_sample_sets_srtt_and_half_of_it_as_deviation() {
        let mut e = RttEstimator::new();
        assert_eq!(e.srtt(), None);
        assert_eq!(e.timeout(&RttBounds::default()), INITIAL_TIMEOUT);
        e.sample(ms(200));
        assert_eq!(e.srtt(), Some(ms(200)));
        assert_eq!(e.rttvar(), Some(ms(100)));
        // 200 + 4·100 = 600 ms, inside the default bounds.
        assert_eq!(e.timeout(&RttBounds::default()), ms(600));
    }

    #[test]
    fn later_samples_follow_rfc_6298_gains() {
        let mut e = RttEstimator::new();
        e.sample(ms(100));
        e.sample(ms(300));
        // rttvar = 3/4·50 + 1/4·|100 − 300| = 87.5; srtt = 7/8·100 + 1/8·300 = 125.
        let srtt = e.srtt().unwrap().as_secs_f64();
        let var = e.rttvar().unwrap().as_secs_f64();
        assert!((srtt - 0.125).abs() < 1e-9, "{srtt}");
        assert!((var - 0.0875).abs() < 1e-9, "{var}");
        assert_eq!(e.samples(), 2);
    }

    #[test]
    fn a_steady_rtt_converges_and_the_timeout_is_clamped_to_its_bounds() {
        let b = RttBounds::default();
        let mut e = RttEstimator::new();
        for _ in 0..200 {
            e.sample(Duration::from_micros(50));
        }
        // A veth answers in microseconds: the floor applies.
        assert_eq!(e.timeout(&b), MIN_TIMEOUT);
        let mut slow = RttEstimator::new();
        for _ in 0..200 {
            slow.sample(ms(5000));
        }
        assert_eq!(slow.timeout(&b), MAX_TIMEOUT);
        let mut mid = RttEstimator::new();
        for _ in 0..200 {
            mid.sample(ms(300));
        }
        let t = mid.timeout(&b);
        assert!(t >= ms(300) && t < ms(310), "{t:?}");
    }

    #[test]
    fn jitter_widens_the_timeout_beyond_the_mean() {
        let mut e = RttEstimator::new();
        for i in 0..100 {
            e.sample(ms(if i % 2 == 0 { 150 } else { 350 }));
        }
        let srtt = e.srtt().unwrap();
        let t = e.timeout(&RttBounds::default());
        assert!(srtt > ms(200) && srtt < ms(300), "{srtt:?}");
        // The deviation is about 100 ms: the timeout covers the slow answers.
        assert!(t > ms(550), "{t:?}");
    }

    #[test]
    fn the_window_grows_in_slow_start_and_halves_once_per_round_trip_on_loss() {
        let t0 = Instant::now();
        let mut w = Window::new(4, 100);
        for _ in 0..10 {
            w.on_answer();
        }
        assert_eq!(w.allowed(), 14);
        w.on_loss(14, t0, ms(100));
        assert_eq!(w.allowed(), 7);
        // A second loss within the same round trip: no change.
        w.on_loss(7, t0 + ms(50), ms(100));
        assert_eq!(w.allowed(), 7);
        // Above the threshold it grows by about one per window of answers.
        for _ in 0..7 {
            w.on_answer();
        }
        assert_eq!(w.allowed(), 7);
        w.on_answer();
        assert_eq!(w.allowed(), 8);
        // A loss after the round trip shrinks again, never below the floor.
        let later = t0 + ms(200);
        for k in 0..10u64 {
            w.on_loss(1, later + ms(k * 300), ms(100));
        }
        assert_eq!(w.allowed(), MIN_WINDOW);
        assert_eq!(w.low(), MIN_WINDOW);
        assert!(w.shrinks() >= 2);
        for _ in 0..1000 {
            w.on_answer();
        }
        assert!(w.allowed() <= 100);
    }

    #[test]
    fn a_fixed_window_never_changes() {
        let t0 = Instant::now();
        let mut w = Window::fixed(64);
        w.on_loss(64, t0, ms(1));
        w.on_answer();
        assert_eq!(w.allowed(), 64);
        assert_eq!(w.shrinks(), 0);
    }
}
