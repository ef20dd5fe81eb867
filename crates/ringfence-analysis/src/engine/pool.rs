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
/// thread that calls [`Shared::help`]; each thread hands its results in
/// once the counter is exhausted, and [`Shared::wait`] gives them back in
/// job order once every job has run.
pub(crate) struct Shared<T> {
    n: usize,
    chunk: usize,
    next: AtomicUsize,
    state: Mutex<State<T>>,
    finished: Condvar,
}

struct State<T> {
    /// Jobs whose results were handed in.
    done: usize,
    /// Results by job number, in the order they were handed in.
    results: Vec<(usize, T)>,
    /// A helper panicked: its jobs never finish.
    failed: bool,
    /// [`Shared::wait`] has taken the results.
    taken: bool,
}

impl<T> Shared<T> {
    /// `n` jobs handed out `chunk` (at least 1) at a time.
    pub(crate) fn new(n: usize, chunk: usize) -> Self {
        Shared {
            n,
            chunk: chunk.max(1),
            next: AtomicUsize::new(0),
            state: Mutex::new(State {
                done: 0,
                results: Vec::new(),
                failed: false,
                taken: false,
            }),
            finished: Condvar::new(),
        }
    }

    /// Number of chunks the jobs come in.
    pub(crate) fn chunks(&self) -> usize {
        self.n.div_ceil(self.chunk)
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A helper that panicked holds no lock while it runs jobs; the
        // state it could have left half-written is guarded by `failed`.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Run `job` on the next unclaimed chunk until none is left, then hand
    /// the results in. Returns at once when every chunk is claimed.
    pub(crate) fn help(&self, job: impl Fn(usize) -> T) {
        /// Marks the work failed when a job panics, so that
        /// [`Shared::wait`] does not wait for results that never come.
        struct Alarm<'s, T>(&'s Shared<T>);
        impl<T> Drop for Alarm<'_, T> {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    self.0.lock().failed = true;
                    self.0.finished.notify_all();
                }
            }
        }
        let alarm = Alarm(self);
        let mut mine = Vec::new();
        loop {
            let k = self.next.fetch_add(1, Ordering::Relaxed);
            let start = k.saturating_mul(self.chunk);
            if start >= self.n {
                break;
            }
            for i in start..self.n.min(start + self.chunk) {
                mine.push((i, job(i)));
            }
        }
        drop(alarm);
        if mine.is_empty() {
            return;
        }
        let mut st = self.lock();
        st.done += mine.len();
        st.results.append(&mut mine);
        drop(st);
        self.finished.notify_all();
    }

    /// Every job's result, in job order, once all have been handed in.
    /// The caller should have helped first (else it only waits).
    ///
    /// # Panics
    /// When a helper panicked while running a job (the panic itself then
    /// reaches the thread scope that spawned it), or on a second call.
    pub(crate) fn wait(&self) -> Vec<T> {
        let mut st = self.lock();
        while st.done < self.n && !st.failed {
            st = self
                .finished
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner);
        }
        assert!(!st.failed, "a thread sharing this work panicked");
        assert!(!st.taken, "the results of shared work were taken twice");
        st.taken = true;
        let mut results = std::mem::take(&mut st.results);
        drop(st);
        results.sort_unstable_by_key(|&(i, _)| i);
        results.into_iter().map(|(_, t)| t).collect()
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
            let got = std::thread::scope(|s| {
                for _ in 0..helpers {
                    s.spawn(|| work.help(job));
                }
                work.help(job);
                work.wait()
            });
            assert_eq!(got, (0..1000).map(|i| i * 3).collect::<Vec<_>>());
            assert_eq!(runs.load(Ordering::Relaxed), 1000);
        }
    }

    /// No job at all: waiting returns at once with nothing.
    #[test]
    fn no_jobs_gives_an_empty_result_without_waiting() {
        let work: Shared<u8> = Shared::new(0, 4);
        work.help(|_| unreachable!("no job to run"));
        assert!(work.wait().is_empty());
        assert_eq!(work.chunks(), 0);
    }

    /// A job that panics on a helper thread makes the waiting thread panic
    /// too, instead of waiting forever for its results.
    #[test]
    fn a_panicking_helper_makes_the_waiter_panic_not_hang() {
        let work = Shared::new(64, 1);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            std::thread::scope(|s| {
                s.spawn(|| {
                    work.help(|i| {
                        if i == 0 {
                            panic!("job 0 fails");
                        }
                        i
                    })
                });
                // This thread takes no job: it only waits, so the panicking
                // helper holds job 0 for certain.
                work.wait()
            })
        }));
        assert!(outcome.is_err());
    }
}
