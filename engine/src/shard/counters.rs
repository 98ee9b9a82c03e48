//! Per-turn counters: taken from each connection after it ran, added to
//! the shared stats once per loop turn.

use super::*;

/// Per-turn counters per source, added to shared stats once per turn.
#[derive(Default, Clone, Copy)]
pub(super) struct Local {
    pub(super) messages: u64,
    pub(super) bytes: u64,
    pub(super) copied_frame: u64,
    pub(super) copied_tls: u64,
    pub(super) oversize: u64,
    pub(super) leading_zero: u64,
    pub(super) pauses: u64,
}

impl Shard {
    pub(super) fn take_conn_counters(&mut self, slot: u32, source: usize) {
        let Some(e) = self.slots[slot as usize].entry.as_mut() else {
            return;
        };
        let c = std::mem::take(&mut e.conn.counters);
        let d = e.conn.take_decoder_counters();
        let ev = e.conn.take_events();
        let stats = &self.shared.stats.sources[source];
        if let Some(path) = ev.tls_path {
            stats.tls_path.inc(path);
        }
        if let Some(kind) = ev.ktls_control {
            stats.ktls_control_records.inc(kind);
        }
        let l = &mut self.local[source];
        l.messages += c.messages;
        l.bytes += c.bytes;
        l.copied_tls += c.tls_copied_bytes;
        l.copied_frame += d.copied_bytes;
        l.oversize += d.oversize_frames;
        l.leading_zero += d.leading_zero_frames;
    }

    pub(super) fn publish_stats(&mut self) {
        for (i, l) in self.local.iter_mut().enumerate() {
            let s = &self.shared.stats.sources[i];
            if l.messages > 0 {
                s.messages_received.fetch_add(l.messages, Relaxed);
                s.bytes_received.fetch_add(l.bytes, Relaxed);
            }
            if l.copied_frame > 0 {
                s.copied_bytes_frame_span.fetch_add(l.copied_frame, Relaxed);
            }
            if l.copied_tls > 0 {
                s.copied_bytes_tls_reassembly
                    .fetch_add(l.copied_tls, Relaxed);
            }
            if l.oversize > 0 {
                s.frames_oversize.fetch_add(l.oversize, Relaxed);
            }
            if l.leading_zero > 0 {
                s.frames_leading_zero.fetch_add(l.leading_zero, Relaxed);
            }
            if l.pauses > 0 {
                s.backpressure_pauses.fetch_add(l.pauses, Relaxed);
            }
            *l = Local::default();
        }
    }
}
