//! Work shared between threads: a list of numbered jobs that every thread
//! taking part draws from in chunks, with the results put back in job
//! order, so the answer does not depend on how many threads took part or
//! which thread ran which job.
//!
//! Verify hands the excess search's per-piece walks out this way
//! ([`super::ExcessSearch`]): the thread that finishes its share early
//! goes on to the shadowed/redundant runs, so neither core idles while
//! work is left.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// How many threads to use for shared work: the cores this process may run
/// on (one when that is not known).
pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Jobs `0..n`, drawn `chunk` at a time from a shared counter by every
/// thread that calls [`Shared::help`] or [`Shared::finish`]. A helper hands
/// in each chunk's results as soon as it has them; the one thread that
/// finishes passes every result on in job order as soon as it and those
/// before it are in, so results wait only while an earlier chunk is still
/// running (memory stays near what one thread would hold).
pub(crate) struct Shared<T> {
    n: usize,
    chunk: usize,
    next: AtomicUsize,
    state: Mutex<State<T>>,
    handed_in: Condvar,
}

struct State<T> {
    /// Results of chunks done by helpers and not yet passed on, by chunk.
    ready: Vec<Option<Vec<T>>>,
    /// A helper panicked: its chunk never comes.
    failed: bool,
    /// [`Shared::finish`] has run.
    finished: bool,
}

impl<T> Shared<T> {
    /// `n` jobs handed out `chunk` (at least 1) at a time.
    pub(crate) fn new(n: usize, chunk: usize) -> Self {
        let chunk = chunk.max(1);
        Shared {
            n,
            chunk,
            next: AtomicUsize::new(0),
            state: Mutex::new(State {
                ready: (0..n.div_ceil(chunk)).map(|_| None).collect(),
                failed: false,
                finished: false,
            }),
            handed_in: Condvar::new(),
        }
    }

    /// Number of chunks the jobs come in.
    pub(crate) fn chunks(&self) -> usize {
        self.n.div_ceil(self.chunk)
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Nobody runs a job while holding the lock; a helper that panicked
        // is reported through `failed`.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next unclaimed chunk, if any, run through `job`: its number and
    /// results.
    fn take(&self, job: &impl Fn(usize) -> T) -> Option<(usize, Vec<T>)> {
        let k = self.next.fetch_add(1, Ordering::Relaxed);
        let start = k.saturating_mul(self.chunk);
        (start < self.n).then(|| {
            (
                k,
                (start..self.n.min(start + self.chunk)).map(job).collect(),
            )
        })
    }

    /// Run `job` on the next unclaimed chunk until none is left, handing
    /// each chunk's results in as soon as it is done.
    pub(crate) fn help(&self, job: impl Fn(usize) -> T) {
        let alarm = Alarm(self);
        while let Some((k, results)) = self.take(&job) {
            self.lock().ready[k] = Some(results);
            self.handed_in.notify_all();
        }
        drop(alarm);
    }

    /// Help like [`Shared::help`], and pass every job's number and result
    /// to `sink` in job order; returns once all have been passed.
    ///
    /// # Panics
    /// When a helper panicked while running a job (the panic itself then
    /// reaches the thread scope that spawned it), or on a second call.
    pub(crate) fn finish(&self, job: impl Fn(usize) -> T, mut sink: impl FnMut(usize, T)) {
        {
            let mut st = self.lock();
            assert!(!st.finished, "shared work finished twice");
            st.finished = true;
        }
        let chunks = self.chunks();
        let mut pass = |k: usize, results: Vec<T>| {
            for (i, t) in results.into_iter().enumerate() {
                sink(k * self.chunk + i, t);
            }
        };
        // The first chunk not yet passed on.
        let mut due = 0;
        while due < chunks {
            // Pass on what helpers have handed in, in order.
            let mut st = self.lock();
            while due < chunks {
                let Some(results) = st.ready[due].take() else {
                    break;
                };
                drop(st);
                pass(due, results);
                due += 1;
                st = self.lock();
            }
            drop(st);
            if due == chunks {
                break;
            }
            match self.take(&job) {
                Some((k, results)) if k == due => {
                    pass(k, results);
                    due += 1;
                }
                Some((k, results)) => self.lock().ready[k] = Some(results),
                None => {
                    // Every chunk is claimed: wait for the one due.
                    let mut st = self.lock();
                    while st.ready[due].is_none() && !st.failed {
                        st = self
                            .handed_in
                            .wait(st)
                            .unwrap_or_else(PoisonError::into_inner);
                    }
                    assert!(!st.failed, "a thread sharing this work panicked");
                }
            }
        }
    }
}

/// Marks the work failed when a helper's job panics, so that
/// [`Shared::finish`] does not wait for results that never come.
struct Alarm<'s, T>(&'s Shared<T>);

impl<T> Drop for Alarm<'_, T> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.lock().failed = true;
            self.0.handed_in.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The results come back in job order however the threads split the
    /// chunks, and every job runs exactly once.
    #[test]
    fn results_come_back_in_job_order_and_each_job_runs_once() {
        for helpers in [0usize, 1, 3] {
            let runs = AtomicUsize::new(0);
            let work = Shared::new(1000, 7);
            let job = |i: usize| {
                runs.fetch_add(1, Ordering::Relaxed);
                // Uneven cost, so the threads interleave.
                if i.is_multiple_of(97) {
                    std::thread::yield_now();
                }
                i * 3
            };
            let mut got = Vec::new();
            std::thread::scope(|s| {
                for _ in 0..helpers {
                    s.spawn(|| work.help(job));
                }
                work.finish(job, |i, t| got.push((i, t)));
            });
            assert_eq!(got, (0..1000).map(|i| (i, i * 3)).collect::<Vec<_>>());
            assert_eq!(runs.load(Ordering::Relaxed), 1000);
        }
    }

    /// No job at all: finishing returns at once with nothing.
    #[test]
    fn no_jobs_gives_an_empty_result_without_waiting() {
        let work: Shared<u8> = Shared::new(0, 4);
        work.help(|_| unreachable!("no job to run"));
        let mut got = Vec::new();
        work.finish(|_| unreachable!("no job to run"), |i, t| got.push((i, t)));
        assert!(got.is_empty());
        assert_eq!(work.chunks(), 0);
    }

    /// Results wait only while an earlier chunk is still running: when the
    /// finishing thread is the only one, each chunk is passed on before the
    /// next one runs.
    #[test]
    fn alone_the_finisher_passes_each_chunk_on_before_running_the_next() {
        let work = Shared::new(20, 4);
        let ran = AtomicUsize::new(0);
        let mut seen = Vec::new();
        work.finish(
            |i| {
                ran.fetch_add(1, Ordering::Relaxed);
                i
            },
            |i, _| {
                // Only this chunk's jobs have run when it is passed on.
                assert!(ran.load(Ordering::Relaxed) <= (i / 4 + 1) * 4);
                seen.push(i);
            },
        );
        assert_eq!(seen, (0..20).collect::<Vec<_>>());
    }

    /// A job that panics on a helper thread makes the finishing thread
    /// panic too, instead of waiting forever for its results.
    #[test]
    fn a_panicking_helper_makes_the_finisher_panic_not_hang() {
        let work = Shared::new(64, 1);
        let started = std::sync::atomic::AtomicBool::new(false);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            std::thread::scope(|s| {
                s.spawn(|| {
                    started.store(true, Ordering::Release);
                    work.help(|_| -> usize { panic!("a helper's job fails") })
                });
                // The finisher's first job waits until the helper runs, so
                // the helper takes a chunk for certain.
                work.finish(
                    |i| {
                        while !started.load(Ordering::Acquire) {
                            std::thread::yield_now();
                        }
                        i
                    },
                    |_, _| {},
                )
            })
        }));
        assert!(outcome.is_err());
    }
}
