//! After the handshake, in userspace: ciphertext split into whole records
//! (only a record cut by a receive buffer's end is copied), decrypted in
//! place by the record layer, and framed.

use super::*;

impl Conn {
    /// Splits incoming ciphertext into whole records: records wholly inside
    /// `data` are processed in place; only a record cut by the buffer's end is
    /// copied, and on the next read only the bytes that complete it.
    pub(super) fn on_tls_data(
        &mut self,
        data: &mut [u8],
        now_ns: u64,
        batcher: &mut dyn FrameSink,
        out: &mut Vec<u8>,
    ) -> Result<Outcome, CloseReason> {
        if !self.seen_bytes && !data.is_empty() {
            // Only the very first bytes can tell plaintext from a ClientHello.
            self.seen_bytes = true;
            if !looks_like_tls(data) {
                self.phase = Phase::Closed;
                return Err(CloseReason::Handshake(HandshakeFailure::NotTls));
            }
        }
        if self.is_handshaking() {
            return self.on_handshake_data(data, now_ns, batcher, out);
        }
        let mut data = data;
        if !self.tls_in.is_empty() {
            // Complete the cut record first, copying only the bytes it lacks.
            loop {
                let missing = record_bytes_missing(&self.tls_in)?;
                if missing == 0 {
                    break;
                }
                if data.is_empty() {
                    return Ok(Outcome::Continue);
                }
                let take = missing.min(data.len());
                self.tls_in.extend_from_slice(&data[..take]);
                self.counters.tls_copied_bytes += take as u64;
                data = &mut data[take..];
            }
            let mut record = std::mem::take(&mut self.tls_in);
            let (consumed, outcome) = self.process_records(&mut record, now_ns, batcher, out)?;
            debug_assert!(
                consumed == record.len(),
                "a whole record is always consumed"
            );
            // The record buffer is dropped, not kept: idle connections hold no buffer.
            drop(record);
            if outcome == Outcome::PeerClosed {
                return Ok(outcome);
            }
        }
        let (consumed, outcome) = self.process_records(data, now_ns, batcher, out)?;
        if outcome == Outcome::PeerClosed {
            return Ok(outcome);
        }
        let rest = &data[consumed..];
        if !rest.is_empty() {
            // The header parser bounds the record, so this reserve is too.
            let missing = record_bytes_missing(rest)?;
            self.tls_in.reserve_exact(rest.len() + missing);
            self.tls_in.extend_from_slice(rest);
            self.counters.tls_copied_bytes += rest.len() as u64;
        }
        Ok(Outcome::Continue)
    }

    /// Decrypts whole records of `buf` in place and frames the plaintext.
    pub(super) fn read_records(
        &mut self,
        buf: &mut [u8],
        now_ns: u64,
        batcher: &mut dyn FrameSink,
        out: &mut Vec<u8>,
    ) -> Result<(usize, Outcome), CloseReason> {
        let Phase::Records(rec) = &mut self.phase else {
            return Ok((0, Outcome::PeerClosed));
        };
        let mut sink = Emit {
            batcher,
            meta: &self.meta,
            now_ns,
            counters: &mut self.counters,
        };
        let decoder = &mut self.decoder;
        let mut framing_error = None;
        let progress = rec.reader.process(buf, &mut |plain| {
            if framing_error.is_none() {
                if let Err(e) = decoder.feed(plain, &mut |f| sink.emit(f)) {
                    framing_error = Some(e);
                }
            }
        });
        if let Some(e) = framing_error {
            self.phase = Phase::Closed;
            return Err(CloseReason::Framing(e));
        }
        let progress = match progress {
            Ok(p) => p,
            Err(e) => {
                let _ = rec.writer.fatal_alert(
                    e.alert().unwrap_or(rustls::AlertDescription::DecodeError),
                    out,
                );
                self.phase = Phase::Closed;
                return Err(CloseReason::Record(e));
            }
        };
        if progress.key_update_requested {
            // RFC 8446 §4.6.3: answer with our own KeyUpdate.
            let Records { reader, writer } = &mut **rec;
            if let Err(e) = reader
                .kernel_mut()
                .and_then(|kernel| writer.key_update(kernel, out))
            {
                log::debug!("{}: KeyUpdate answer not sent: {e}", self.meta.peer);
            }
        }
        match progress.event {
            None => Ok((progress.consumed, Outcome::Continue)),
            Some(ControlEvent::CloseNotify) => {
                let _ = rec.writer.close_notify(out);
                self.phase = Phase::Closed;
                self.decoder
                    .finish(&mut |f| sink.emit(f))
                    .map_err(CloseReason::Framing)?;
                Ok((buf.len(), Outcome::PeerClosed))
            }
            Some(alert @ ControlEvent::Alert { .. }) => {
                self.phase = Phase::Closed;
                Err(CloseReason::PeerAlert(alert.alert_description()))
            }
        }
    }
}

/// How many more bytes complete the record at the front of `buf` (0 when
/// it is whole), read by the record layer's one header parser: what is not
/// TLS, or longer than TLS allows, is refused before its body is buffered.
pub(super) fn record_bytes_missing(buf: &[u8]) -> Result<usize, CloseReason> {
    match record::record_len_needed(buf).map_err(CloseReason::Record)? {
        Needed::Complete { .. } => Ok(0),
        Needed::More { missing } => Ok(missing),
    }
}
