//! One destination of the writer, whatever its kind. Each kind owns its
//! delivery, retries and loss accounting in its own module; this enum only
//! dispatches, so adding a kind touches one match per method here.
//!
//! Every kind keeps the same contract ([`Destination::deliver`]): it blocks
//! the writer (never a shard) until the round is delivered, so a slow or
//! failing destination fills the rings and the shards stop reading; only
//! after shutdown, past [`GiveUp::at`], does it stop trying and count what
//! it could not deliver.

use std::io;
use std::time::{Duration, Instant};

use super::encode::Out;
use super::file_destination::FileDestination;
use super::report::DestinationLoss;
use super::sys::Fs;
use super::WriterControl;
use crate::config::{DestinationConfig, DestinationType, OutputFormat};
use crate::stats::DestinationStats;

/// When a failing destination is given up: a fixed time after shutdown
/// began. Read on every failure, so a SIGTERM that arrives while the writer
/// is already retrying still ends the retries in time.
#[derive(Clone, Copy)]
pub struct GiveUp<'a> {
    pub control: &'a WriterControl,
    pub after_shutdown: Duration,
}

impl GiveUp<'_> {
    pub fn at(&self) -> Option<Instant> {
        self.control.shutdown_at().map(|t| t + self.after_shutdown)
    }
}

pub enum Destination<F: Fs> {
    File(FileDestination<F>),
}

impl<F: Fs + Clone> Destination<F> {
    pub fn open(
        fs: F,
        cfg: &DestinationConfig,
        feeds: Vec<bool>,
        stats: &DestinationStats,
    ) -> io::Result<Destination<F>> {
        match cfg.kind {
            DestinationType::File => Ok(Destination::File(FileDestination::open(
                fs, cfg, feeds, stats,
            )?)),
        }
    }

    /// For each source, whether it feeds this destination.
    pub fn feeds(&self) -> &[bool] {
        match self {
            Destination::File(d) => &d.feeds,
        }
    }

    pub fn format(&self) -> OutputFormat {
        match self {
            Destination::File(d) => d.format(),
        }
    }

    /// Whether its output of a round is spread over files by a path
    /// template: then it is encoded per message and [`place`](Self::place)d first.
    pub fn is_split(&self) -> bool {
        match self {
            Destination::File(d) => d.is_split(),
        }
    }

    /// Decides where each message of `round` it takes goes (path templates).
    pub fn place(
        &mut self,
        round: &[(usize, crate::batch::Batch)],
        routed: Option<(&[Vec<u64>], usize)>,
        parse: &[crate::parse::ParseMode],
        names: &[String],
    ) {
        match self {
            Destination::File(d) => d.place(round, routed, parse, names),
        }
    }

    pub fn gave_up(&self) -> bool {
        match self {
            Destination::File(d) => d.gave_up(),
        }
    }

    /// Delivers `out` (`force`: make it durable now, whatever the policy),
    /// retrying until it succeeds or the give-up instant passes. Returns how
    /// many of `out`'s messages, from the first, were wholly delivered.
    pub fn deliver(
        &mut self,
        out: &Out<'_>,
        force: bool,
        stats: &DestinationStats,
        give_up: GiveUp<'_>,
    ) -> u64 {
        match self {
            Destination::File(d) => d.deliver(out, force, stats, give_up),
        }
    }

    /// SIGHUP.
    pub fn request_reopen(&mut self, now: Instant) {
        match self {
            Destination::File(d) => d.request_reopen(now),
        }
    }

    pub fn reopen_if_due(&mut self, now: Instant, stats: &DestinationStats) {
        match self {
            Destination::File(d) => d.reopen_if_due(now, stats),
        }
    }

    /// The last durability step, then what this destination could not guarantee.
    pub fn finish(self, stats: &DestinationStats) -> DestinationLoss {
        match self {
            Destination::File(d) => d.finish(stats),
        }
    }
}
