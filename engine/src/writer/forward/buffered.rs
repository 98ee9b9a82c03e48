//! The disk-buffer side of a forward destination (`[destination.disk_buffer]`):
//! where a round goes when the upstream cannot take it now, and the replay
//! of the buffer, oldest segment first, as far as the upstream takes it.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use super::destination::{unix_ms, ForwardDestination, Step};
use super::disk_buffer::DiskBuffer;
use crate::config::WhenFull;
use crate::stats::{publish_share, DestinationStats};
use crate::writer::destination::GiveUp;

/// Disk segments replayed per writer turn at most, so new messages (which
/// go to the disk meanwhile) are not held up long.
const REPLAY_SEGMENTS_PER_TURN: usize = 4;

impl ForwardDestination {
    /// With a disk buffer: this round goes straight to the upstream when
    /// nothing waits on disk and the connection is up; else (or when that
    /// fails) to the disk, in order, and the disk is replayed as far as the
    /// upstream takes it now. The writer waits only for a full buffer with
    /// `when_full = "block"`.
    pub(super) fn deliver_buffered(
        &mut self,
        messages: u64,
        stats: &DestinationStats,
        give_up: GiveUp<'_>,
    ) -> u64 {
        let mut frames = std::mem::take(&mut self.incoming);
        let disk_empty = self.disk.as_ref().is_none_or(DiskBuffer::is_empty);
        if disk_empty && !frames.is_empty() && self.upstreams[0].link.is_some() {
            for (_, f) in frames.drain(..) {
                self.upstreams[0].session.push(f);
            }
            if !matches!(self.drive(0, stats, give_up, false), Step::Done) {
                frames = self.reclaim().into_iter().map(|f| (0, f)).collect();
            }
        }
        let mut not_kept = 0;
        for (_, f) in frames.drain(..) {
            if !self.make_room(f.len(), stats, give_up) {
                not_kept += 1;
                continue;
            }
            let Some(disk) = self.disk.as_mut() else {
                break;
            };
            if let Err(e) = disk.push(&f, unix_ms()) {
                // The buffer's disk failed: fall back to waiting on the upstream.
                log::error!(
                    "destination {}: disk buffer write failed: {e}; waiting for the upstream instead",
                    self.plan.name
                );
                stats.upstream_errors.inc("disk_buffer_io");
                self.upstreams[0].session.push(f);
                if let Step::GaveUp = self.drive(0, stats, give_up, true) {
                    let (m, b) = self.upstreams[0].session.abandon();
                    self.loss.not_written_messages += m;
                    self.loss.not_written_bytes += b;
                    not_kept += m;
                }
            }
        }
        self.incoming = frames;
        if let Some(disk) = self.disk.as_mut() {
            if let Err(e) = disk.sync() {
                log::error!(
                    "destination {}: disk buffer fsync failed: {e}",
                    self.plan.name
                );
                stats.upstream_errors.inc("disk_buffer_io");
            }
        }
        self.replay(stats, give_up, false);
        self.note_disk(stats);
        messages.saturating_sub(not_kept)
    }

    /// Whether the disk buffer can take `len` more bytes, after waiting for
    /// the upstream to drain it (`when_full = "block"`). False: the frame
    /// is dropped (counted) or, past the give-up instant, lost (counted).
    fn make_room(&mut self, len: usize, stats: &DestinationStats, give_up: GiveUp<'_>) -> bool {
        let when_full = self
            .plan
            .disk_buffer
            .as_ref()
            .map_or(WhenFull::Block, |c| c.when_full);
        loop {
            let Some(disk) = self.disk.as_ref() else {
                return false;
            };
            if disk.has_room(len) {
                return true;
            }
            if when_full == WhenFull::DropNewest {
                stats.disk_buffer_dropped.fetch_add(1, Relaxed);
                return false;
            }
            if give_up.at().is_some_and(|t| Instant::now() >= t) {
                self.loss.not_written_messages += 1;
                self.loss.not_written_bytes += len as u64;
                return false;
            }
            self.replay(stats, give_up, true);
        }
    }

    /// Sends the disk buffer's oldest segments while the upstream takes
    /// them; `patient`: wait for it (back-pressure) instead of returning.
    fn replay(&mut self, stats: &DestinationStats, give_up: GiveUp<'_>, patient: bool) {
        for _ in 0..REPLAY_SEGMENTS_PER_TURN {
            let Some(disk) = self.disk.as_mut() else {
                return;
            };
            if disk.is_empty() {
                return;
            }
            if self.upstreams[0].link.is_none() {
                let due = self.upstreams[0]
                    .retry_at
                    .is_none_or(|t| t <= Instant::now());
                if !patient && !due {
                    return;
                }
                if due {
                    self.connect(0, stats);
                }
                if !patient && self.upstreams[0].link.is_none() {
                    return;
                }
            }
            let frames = match self.disk.as_mut().map(DiskBuffer::head_frames) {
                Some(Ok(f)) => f,
                Some(Err(e)) => {
                    log::error!(
                        "destination {}: disk buffer read failed: {e}",
                        self.plan.name
                    );
                    stats.upstream_errors.inc("disk_buffer_io");
                    return;
                }
                None => return,
            };
            let before = self.upstreams[0].session.delivered();
            for f in frames {
                self.upstreams[0].session.push(f);
            }
            let step = self.drive(0, stats, give_up, patient);
            let sent = self.upstreams[0].session.delivered() - before;
            if let Some(Err(e)) = self.disk.as_mut().map(|d| d.delivered(sent)) {
                log::error!(
                    "destination {}: disk buffer segment not removed: {e}",
                    self.plan.name
                );
            }
            self.note_disk(stats);
            if !matches!(step, Step::Done) {
                // What was not sent is still on disk.
                self.reclaim();
                return;
            }
        }
    }

    /// After an impatient drive stopped: the frames the session did not
    /// deliver, in order (its connection dropped if still up).
    fn reclaim(&mut self) -> Vec<Vec<u8>> {
        let up = &mut self.upstreams[0];
        if up.session.is_connected() {
            up.link = None;
            up.session.failed();
        }
        up.session.take_pending()
    }

    /// Publishes this writer's share of the disk-buffer gauges. Several
    /// writers feed one destination's gauges, so bytes and messages move by
    /// this writer's change, and the oldest age is the oldest any writer
    /// reported (cleared by the writer that set it once its buffer empties).
    fn note_disk(&mut self, stats: &DestinationStats) {
        let Some(d) = &self.disk else { return };
        let (bytes, messages) = (d.bytes(), d.messages());
        let stamp = d.oldest_unix_ms().unwrap_or(0);
        let (mut was_bytes, mut was_messages, was_stamp) = self.disk_published;
        publish_share(&stats.disk_buffer_bytes, &mut was_bytes, bytes);
        publish_share(&stats.disk_buffer_messages, &mut was_messages, messages);
        self.disk_published = (bytes, messages, stamp);
        let _ = stats
            .disk_buffer_oldest_unix_ms
            .fetch_update(Relaxed, Relaxed, |cur| match (stamp, cur) {
                // This writer holds something older than what is shown.
                (t, c) if t != 0 && (c == 0 || t < c) => Some(t),
                // What is shown was this writer's, and it has moved on:
                // its own stamp (or 0) until another writer lowers it.
                (t, c) if c == was_stamp && t != c => Some(t),
                _ => None,
            });
    }
}
