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
use super::forward::{ForwardDestination, ForwardPlan};
#[cfg(feature = "kafka")]
use super::kafka::KafkaDestination;
use super::parsed::Parsed;
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

// One per configured destination, made once at start-up: the variants'
// sizes do not matter, and boxing would add a hop on every round.
#[allow(clippy::large_enum_variant)]
pub enum Destination<F: Fs> {
    File(FileDestination<F>),
    Forward(ForwardDestination),
    #[cfg(feature = "kafka")]
    Kafka(KafkaDestination),
}

impl<F: Fs + Clone> Destination<F> {
    /// Opens the destination of `cfg`; a forward one from `forward`, its
    /// plan as `Plan::build` made it (no file is read again here).
    pub fn open(
        fs: F,
        cfg: &DestinationConfig,
        forward: Option<&ForwardPlan>,
        feeds: Vec<bool>,
        stats: &DestinationStats,
    ) -> io::Result<Destination<F>> {
        match cfg.kind {
            DestinationType::File => Ok(Destination::File(FileDestination::open(
                fs, cfg, feeds, stats,
            )?)),
            DestinationType::Forward => {
                let plan = forward.ok_or_else(|| {
                    io::Error::other(format!(
                        "destination {}: no forward plan was built for it (Plan::build builds one per forward destination)",
                        cfg.name
                    ))
                })?;
                let plan = plan.for_writer(cfg);
                Ok(Destination::Forward(ForwardDestination::open(plan, feeds)?))
            }
            #[cfg(feature = "kafka")]
            DestinationType::Kafka => KafkaDestination::open(cfg, feeds)
                .map(Destination::Kafka)
                .map_err(io::Error::other),
            // config::kafka::check refuses it in such a build; this is the backstop.
            #[cfg(not(feature = "kafka"))]
            DestinationType::Kafka => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "destination {}: this build of ringest has no kafka client (cargo feature kafka)",
                    cfg.name
                ),
            )),
        }
    }

    /// For each source, whether it feeds this destination.
    pub fn feeds(&self) -> &[bool] {
        match self {
            Destination::File(d) => &d.feeds,
            Destination::Forward(d) => &d.feeds,
            #[cfg(feature = "kafka")]
            Destination::Kafka(d) => &d.feeds,
        }
    }

    pub fn format(&self) -> OutputFormat {
        match self {
            Destination::File(d) => d.format(),
            Destination::Forward(_) => OutputFormat::Raw,
            #[cfg(feature = "kafka")]
            Destination::Kafka(d) => d.format,
        }
    }

    /// Whether [`deliver`](Self::deliver) needs each encoded message's origin.
    pub fn wants_origins(&self) -> bool {
        match self {
            Destination::File(_) => false,
            // Each message's connection: its upstream and its identity.
            Destination::Forward(_) => true,
            #[cfg(feature = "kafka")]
            Destination::Kafka(d) => d.wants_origins(),
        }
    }

    /// Whether its output of a round is spread over files by a path
    /// template: then it is encoded per message and [`place`](Self::place)d first.
    pub fn is_split(&self) -> bool {
        match self {
            Destination::File(d) => d.is_split(),
            Destination::Forward(_) => false,
            #[cfg(feature = "kafka")]
            Destination::Kafka(_) => false,
        }
    }

    /// Decides where each message of the round it takes goes (path templates).
    pub fn place(
        &mut self,
        parsed: &Parsed<'_>,
        routed: Option<(&[Vec<u64>], usize)>,
        names: &[String],
    ) {
        match self {
            Destination::File(d) => d.place(parsed, routed, names),
            Destination::Forward(_) => {}
            #[cfg(feature = "kafka")]
            Destination::Kafka(_) => {}
        }
    }

    pub fn gave_up(&self) -> bool {
        match self {
            Destination::File(d) => d.gave_up(),
            Destination::Forward(d) => d.gave_up(),
            #[cfg(feature = "kafka")]
            Destination::Kafka(d) => d.gave_up(),
        }
    }

    /// Delivers `out` (`force`: make it durable now, whatever the policy),
    /// retrying until it succeeds or the give-up instant passes. Returns how
    /// many of `out`'s messages, from the first, were wholly delivered.
    pub fn deliver(
        &mut self,
        out: &Out<'_, '_>,
        force: bool,
        stats: &DestinationStats,
        give_up: GiveUp<'_>,
    ) -> u64 {
        match self {
            Destination::File(d) => d.deliver(out, force, stats, give_up),
            Destination::Forward(d) => d.deliver(out, stats, give_up),
            #[cfg(feature = "kafka")]
            Destination::Kafka(d) => d.deliver(out, stats, give_up),
        }
    }

    /// SIGHUP.
    pub fn request_reopen(&mut self, now: Instant) {
        match self {
            Destination::File(d) => d.request_reopen(now),
            // Forward destinations follow `WriterControl::sighups` themselves.
            Destination::Forward(_) => {}
            #[cfg(feature = "kafka")]
            Destination::Kafka(_) => {}
        }
    }

    pub fn reopen_if_due(&mut self, now: Instant, stats: &DestinationStats) {
        match self {
            Destination::File(d) => d.reopen_if_due(now, stats),
            Destination::Forward(_) => {}
            #[cfg(feature = "kafka")]
            Destination::Kafka(_) => {}
        }
    }

    /// The last durability step (a file's fsync; waiting for Kafka's
    /// acknowledgements until `give_up`'s instant), then what this
    /// destination could not guarantee.
    pub fn finish(self, stats: &DestinationStats, give_up: GiveUp<'_>) -> DestinationLoss {
        match self {
            Destination::File(d) => {
                let _ = give_up;
                d.finish(stats)
            }
            Destination::Forward(d) => d.finish(),
            #[cfg(feature = "kafka")]
            Destination::Kafka(d) => d.finish(stats, give_up),
        }
    }
}
