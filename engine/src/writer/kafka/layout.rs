//! A topic's partition layout, kept current by a control-plane thread.
//!
//! A metadata request blocks until the brokers answer (up to its
//! timeout, all of it while they are down), so the writer never makes
//! one for the layout: a thread per kafka destination asks when the
//! destination opens, every [`REFRESH`] after, and at once (at most once
//! per [`RETRY`]) when the writer finds the layout stale (a produce to a
//! partition librdkafka does not know). The writer reads the latest answer
//! without waiting ([`LayoutWatch::latest`]: an atomic generation, the
//! lock only when it changed) and uses librdkafka's own partitioning
//! until a first answer comes.
//!
//! The thread's schedule is [`next_fetch`] (pure); the request itself is
//! the closure the producer gives (`native::Handles::layout`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::partition::Layout;

/// How often a known layout is asked for again: partitions added to the
/// topic are used (and keyed messages move to them, as librdkafka moves
/// them once it learns the new count) within this long.
pub const REFRESH: Duration = Duration::from_secs(10);

/// How soon an unanswered request (brokers down, topic missing) is made
/// again, and the least time between two requests.
pub const RETRY: Duration = Duration::from_secs(1);

/// How long one metadata request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

/// What a metadata request said about the topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// The topic's partitions.
    Known(Layout),
    /// The brokers answered without partitions for it (missing topic, or
    /// one being created): librdkafka partitions its messages.
    Unknown,
    /// No answer (brokers down, timeout): the last layout still holds
    /// (a broker restart does not change the partition count).
    NoAnswer,
}

/// When the thread asks next, after asking at `last`: sooner when the
/// layout is not known, at once (but not before [`RETRY`] after the last
/// request) when the writer asked for it.
pub fn next_fetch(last: Instant, known: bool, requested: bool) -> Instant {
    if requested || !known {
        last + RETRY
    } else {
        last + REFRESH
    }
}

#[derive(Default)]
struct State {
    layout: Option<Layout>,
    requested: bool,
    stop: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    /// Bumped at each answer that set the layout.
    generation: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding it left plain data behind: still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The thread and what it shares with the writer. Dropping it stops the
/// thread and joins it (the producer relies on that: native.rs,
/// invariant 1).
pub struct LayoutWatch {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl LayoutWatch {
    /// Starts the thread; `fetch(timeout)` makes one metadata request, and
    /// `changed` is told each layout that differs from the last one.
    pub fn start(
        fetch: impl FnMut(Duration) -> Fetched + Send + 'static,
        changed: impl FnMut(Option<&Layout>) + Send + 'static,
    ) -> std::io::Result<LayoutWatch> {
        let shared = Arc::new(Shared::default());
        let inner = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("kafka-layout".into())
            .spawn(move || watch(&inner, fetch, changed))?;
        Ok(LayoutWatch {
            shared,
            thread: Some(thread),
        })
    }

    /// The layout, when an answer came since generation `*seen` (which it
    /// updates): `Some(None)` when the topic has no known layout now.
    pub fn latest(&self, seen: &mut u64) -> Option<Option<Layout>> {
        let generation = self.shared.generation.load(Ordering::Acquire);
        if generation == *seen {
            return None;
        }
        *seen = generation;
        Some(self.shared.lock().layout.clone())
    }

    /// Asks the thread for a fresh answer (without waiting for it).
    pub fn refresh(&self) {
        self.shared.lock().requested = true;
        self.shared.wake.notify_one();
    }
}

impl Drop for LayoutWatch {
    /// Stops the thread and waits for it: at most one request's timeout.
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                log::error!("kafka layout thread panicked");
            }
        }
    }
}

/// The thread: ask, publish, wait until the next request is due (or the
/// writer asks, or the watch is dropped).
fn watch(
    shared: &Shared,
    mut fetch: impl FnMut(Duration) -> Fetched,
    mut changed: impl FnMut(Option<&Layout>),
) {
    let mut known: Option<Layout> = None;
    loop {
        let asked = Instant::now();
        let answer = fetch(REQUEST_TIMEOUT);
        let mut state = shared.lock();
        if state.stop {
            return;
        }
        let layout = match answer {
            Fetched::Known(l) => Some(l),
            Fetched::Unknown => None,
            Fetched::NoAnswer => known.clone(),
        };
        if layout.as_ref().map(|l| l.count) != known.as_ref().map(|l| l.count) {
            changed(layout.as_ref());
        }
        known.clone_from(&layout);
        state.layout = layout;
        // Every answer is published, also an unchanged one: the writer may
        // have set its copy aside as stale.
        shared.generation.fetch_add(1, Ordering::Release);
        let answered = state.layout.is_some();
        // Bounded: each turn waits for the deadline, a request or stop.
        loop {
            let due = next_fetch(asked, answered, state.requested);
            let now = Instant::now();
            if state.stop {
                return;
            }
            if now >= due {
                break;
            }
            state = shared
                .wake
                .wait_timeout(state, due - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        state.requested = false;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    fn four() -> Layout {
        Layout {
            count: 4,
            led: vec![0, 1, 2, 3],
        }
    }

    #[test]
    fn a_known_layout_is_asked_again_after_the_refresh_an_unknown_one_sooner() {
        let t = Instant::now();
        assert_eq!(next_fetch(t, true, false), t + REFRESH);
        assert_eq!(next_fetch(t, false, false), t + RETRY);
        assert_eq!(
            next_fetch(t, true, true),
            t + RETRY,
            "asked for: at once, but not more often than RETRY"
        );
        assert!(RETRY < REFRESH && REQUEST_TIMEOUT <= RETRY);
    }

    fn wait_for(watch: &LayoutWatch, seen: &mut u64) -> Option<Layout> {
        for _ in 0..500 {
            if let Some(l) = watch.latest(seen) {
                return l;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("no answer in 5 s");
    }

    #[test]
    fn the_writer_sees_each_answer_once_and_a_lost_answer_keeps_the_layout() {
        let (tx, rx) = mpsc::channel::<Fetched>();
        let (ctx, crx) = mpsc::channel::<Option<i32>>();
        let watch = LayoutWatch::start(
            move |_| {
                rx.recv_timeout(Duration::from_secs(5))
                    .unwrap_or(Fetched::NoAnswer)
            },
            move |l| {
                let _ = ctx.send(l.map(|l| l.count));
            },
        )
        .expect("thread");
        let mut seen = 0;
        assert_eq!(watch.latest(&mut seen), None, "nothing answered yet");
        tx.send(Fetched::Known(four())).expect("send");
        assert_eq!(wait_for(&watch, &mut seen), Some(four()));
        assert_eq!(watch.latest(&mut seen), None, "seen");
        assert_eq!(crx.recv().expect("changed"), Some(4));
        // Asked for: the thread asks again (after RETRY) and the brokers do
        // not answer: the layout stays, and no change is told.
        watch.refresh();
        tx.send(Fetched::NoAnswer).expect("send");
        assert_eq!(wait_for(&watch, &mut seen), Some(four()));
        // The topic gone: unknown, told.
        watch.refresh();
        tx.send(Fetched::Unknown).expect("send");
        assert_eq!(wait_for(&watch, &mut seen), None);
        assert_eq!(crx.recv().expect("changed"), None);
        assert!(crx.try_recv().is_err(), "told only of changes");
        // Dropping it stops the thread while it waits (the closed channel
        // answers its next request at once).
        drop(tx);
        let t = Instant::now();
        drop(watch);
        assert!(t.elapsed() < REFRESH, "{:?}", t.elapsed());
    }
}
