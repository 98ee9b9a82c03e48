//! The handshake phase: rustls (unbuffered, sans-IO) over whole records,
//! greedy or record-exact reads, the hand-over to the record layer or to
//! the kernel, and the alert rustls prepared when it refuses a client.

use std::convert::Infallible;
use std::sync::Arc;

use rustls::server::UnbufferedServerConnection;

use crate::tls::driver::{self, DriveError, Progress};

use super::records::record_bytes_missing;
use super::*;

impl Conn {
    /// `n` bytes (> 0) arrived in [`Conn::exact_read_buf`]. Once a record is
    /// whole it goes to rustls; when the handshake ends, the buffer is
    /// dropped and [`Conn::recv_plan`] says what comes next.
    pub fn on_exact_read(
        &mut self,
        n: usize,
        now_ns: u64,
        batcher: &mut dyn FrameSink,
        out: &mut Vec<u8>,
    ) -> Result<Outcome, CloseReason> {
        self.guarded(|c| c.on_exact_read_unguarded(n, now_ns, batcher, out))
    }

    pub(super) fn on_exact_read_unguarded(
        &mut self,
        n: usize,
        now_ns: u64,
        batcher: &mut dyn FrameSink,
        out: &mut Vec<u8>,
    ) -> Result<Outcome, CloseReason> {
        let Some(mut ex) = self.exact.take() else {
            return Ok(Outcome::Continue);
        };
        ex.filled(n);
        if !self.seen_bytes && !looks_like_tls(ex.read_so_far()) {
            self.phase = Phase::Closed;
            return Err(CloseReason::Handshake(HandshakeFailure::NotTls));
        }
        if let Err(e) = ex.want() {
            self.phase = Phase::Closed;
            return Err(CloseReason::Record(e));
        }
        let result = match ex.whole_record() {
            Some(record) => {
                let r = self.on_tls_data(record, now_ns, batcher, out);
                ex.clear();
                r
            }
            None => Ok(Outcome::Continue),
        };
        if result.is_ok() && self.is_handshaking() {
            self.exact = Some(ex);
        }
        result
    }

    /// Handshake bytes are few, so they are copied: appended to what rustls
    /// kept from earlier reads, and that whole buffer is processed again.
    /// Once the handshake is over, what follows in the buffer is
    /// application data for the record layer; only a record cut by its end
    /// is kept (in `tls_in`), and the handshake buffer is freed.
    pub(super) fn on_handshake_data(
        &mut self,
        data: &[u8],
        now_ns: u64,
        batcher: &mut dyn FrameSink,
        out: &mut Vec<u8>,
    ) -> Result<Outcome, CloseReason> {
        if self.handshake_in.len() + data.len() > HANDSHAKE_BUFFERED_BYTES_MAX {
            self.phase = Phase::Closed;
            return Err(CloseReason::Local(LocalClose::HandshakeTooLarge {
                handshake_buffered_bytes_max: HANDSHAKE_BUFFERED_BYTES_MAX,
            }));
        }
        let mut buf = std::mem::take(&mut self.handshake_in);
        buf.extend_from_slice(data);
        self.counters.tls_copied_bytes += data.len() as u64;
        let (consumed, outcome) = self.process_records(&mut buf, now_ns, batcher, out)?;
        if outcome == Outcome::PeerClosed {
            return Ok(outcome);
        }
        if self.is_handshaking() {
            // rustls may have rewritten the bytes it kept (joining fragments
            // in place): keep them exactly as they are.
            buf.drain(..consumed);
            self.handshake_in = buf;
            return Ok(Outcome::Continue);
        }
        let rest = &buf[consumed..];
        if !rest.is_empty() {
            debug_assert!(
                self.tls_in.is_empty(),
                "no cut record before the handshake ended"
            );
            record_bytes_missing(rest)?;
            self.tls_in.extend_from_slice(rest);
        }
        Ok(Outcome::Continue)
    }

    /// Runs rustls over whole records in `buf` (through the shared
    /// [`driver`]); returns the bytes consumed.
    pub(super) fn process_records(
        &mut self,
        buf: &mut [u8],
        now_ns: u64,
        batcher: &mut dyn FrameSink,
        out: &mut Vec<u8>,
    ) -> Result<(usize, Outcome), CloseReason> {
        let mut offset = 0;
        // Bounded: the handshake ends once, then the record layer takes the rest.
        for _ in 0..2 {
            let tls = match &mut self.phase {
                Phase::Handshaking(t) => t,
                Phase::Records(_) => {
                    let (consumed, outcome) =
                        self.read_records(&mut buf[offset..], now_ns, batcher, out)?;
                    return Ok((offset + consumed, outcome));
                }
                // Record-exact reads: the handshake's last record was the
                // whole buffer, so nothing follows it here.
                Phase::KtlsPending(_) | Phase::Ktls(_) => {
                    return Ok((offset, Outcome::Continue));
                }
                Phase::Plain | Phase::Closed => return Ok((offset, Outcome::PeerClosed)),
            };
            // Data that came with the client's Finished: rustls hands it out
            // before the handshake is seen to end. Its frames must carry the
            // peer's identity, which needs `tls`, so it is framed after the
            // call (rare, and at most one read).
            let mut plain = Vec::new();
            let d = driver::drive(tls.as_mut(), &mut buf[offset..], out, &mut |p: &[u8]| {
                plain.extend_from_slice(p);
                Ok::<(), Infallible>(())
            });
            offset += d.consumed;
            if !plain.is_empty() {
                if let Phase::Handshaking(tls) = &self.phase {
                    self.meta = Arc::new(ConnMeta {
                        source: self.meta.source,
                        peer: self.meta.peer,
                        identity: Some(identity_of(tls)),
                    });
                }
                self.feed_plain(&plain, now_ns, batcher)?;
            }
            match d.result {
                Ok(Progress::NeedMore) => return Ok((offset, Outcome::Continue)),
                Ok(Progress::Traffic) => {
                    let unread = buf.len() - offset;
                    self.finish_handshake(unread)?;
                    // Whole records after the client's Finished were handed out
                    // above; a cut one is still at `offset` for the reader.
                }
                Ok(Progress::PeerClosed | Progress::Closed) => {
                    if let Phase::Handshaking(tls) = &self.phase {
                        if !tls.is_handshaking() {
                            // The client's data and close_notify came with its
                            // Finished: rustls read it all, so that was the path.
                            let d = match decide_path(&self.ktls, tls, usize::MAX) {
                                Decision::Offload => {
                                    Decision::Userspace(UserspaceReason::HandshakeNotAligned)
                                }
                                d => d,
                            };
                            log::debug!(
                                "{}: TLS established and closed within one read; data path: \
                                 userspace rustls ({})",
                                self.meta.peer,
                                d.label()
                            );
                            self.events.tls_path = Some(path_label(d));
                        }
                    }
                    self.finish_frames(now_ns, batcher)?;
                    self.phase = Phase::Closed;
                    return Ok((buf.len(), Outcome::PeerClosed));
                }
                Err(DriveError::Tls(e)) => return Err(self.fail(e, out)),
                Err(DriveError::Record(e)) => return Err(CloseReason::Rustls(e)),
                Err(DriveError::Encode(e)) => {
                    return Err(CloseReason::Internal(format!(
                        "encoding a handshake record: {e:?}"
                    )))
                }
                Err(DriveError::Plain(never)) => match never {},
            }
        }
        debug_assert!(!self.is_handshaking(), "the handshake ended above");
        Ok((offset, Outcome::Continue))
    }

    /// Hands the connection from rustls to the kernel or to the record
    /// layer. rustls must have processed every whole record it was given (it
    /// returned WriteTraffic), so its sequence numbers match the bytes that
    /// follow. `unread_bytes` is ciphertext already read past that point:
    /// the record layer takes it, the kernel cannot.
    pub(super) fn finish_handshake(&mut self, unread_bytes: usize) -> Result<(), CloseReason> {
        let phase = std::mem::replace(&mut self.phase, Phase::Closed);
        let Phase::Handshaking(tls) = phase else {
            self.phase = phase;
            return Ok(());
        };
        let version = tls
            .protocol_version()
            .unwrap_or(rustls::ProtocolVersion::TLSv1_3);
        let mut decision = decide_path(&self.ktls, &tls, unread_bytes);
        let identity = identity_of(&tls);
        let (tls_version, cipher, client_cn) = (
            identity.tls_version,
            identity.cipher,
            identity.client_cn.clone(),
        );
        self.meta = Arc::new(ConnMeta {
            source: self.meta.source,
            peer: self.meta.peer,
            identity: Some(identity),
        });
        let (secrets, kernel) = (*tls)
            .dangerous_into_kernel_connection()
            .map_err(|e| CloseReason::Internal(format!("secret extraction: {e}")))?;
        if decision == Decision::Offload {
            let tx = CryptoInfo::new(version, secrets.tx.0, &secrets.tx.1);
            let rx = CryptoInfo::new(version, secrets.rx.0, &secrets.rx.1);
            let can_rekey = self.ktls.as_ref().is_some_and(|p| p.support.tls13_rekey);
            match (tx, rx) {
                (Ok(tx), Ok(rx)) => {
                    log::debug!(
                        "{}: TLS established ({tls_version} {cipher}), client {client_cn:?}; \
                         data path: kTLS (offload once the handshake is sent)",
                        self.meta.peer,
                    );
                    self.phase =
                        Phase::KtlsPending(Box::new(Pending::new(tx, rx, kernel, can_rekey)));
                    return Ok(());
                }
                // The policy offloads only ciphers the kernel has; should a
                // suite still not map, the record layer takes it safely.
                _ => decision = Decision::Userspace(UserspaceReason::CipherUnsupported),
            }
        }
        log::debug!(
            "{}: TLS established ({tls_version} {cipher}), client {client_cn:?}; \
             data path: userspace record layer ({})",
            self.meta.peer,
            decision.label(),
        );
        self.events.tls_path = Some(path_label(decision));
        let (reader, writer) = record::split(kernel, secrets).map_err(CloseReason::Record)?;
        self.phase = Phase::Records(Box::new(Records { reader, writer }));
        Ok(())
    }

    /// Turns a rustls error into a close reason, queueing the alert rustls
    /// prepared so the client learns why (e.g. "unknown CA").
    pub(super) fn fail(&mut self, err: rustls::Error, out: &mut Vec<u8>) -> CloseReason {
        let was_handshaking = self.is_handshaking();
        if let Phase::Handshaking(tls) = &mut self.phase {
            driver::pending_alert(tls.as_mut(), out);
        }
        self.phase = Phase::Closed;
        if was_handshaking {
            let failure = HandshakeFailure::classify(&err);
            match refusal_detail(&err) {
                Some(detail) => CloseReason::Refused(failure, detail),
                None => CloseReason::Handshake(failure),
            }
        } else {
            CloseReason::Rustls(err)
        }
    }
}

/// Who the peer is, once its handshake is complete.
pub(super) fn identity_of(tls: &UnbufferedServerConnection) -> PeerIdentity {
    PeerIdentity::from_parts(
        tls.protocol_version()
            .unwrap_or(rustls::ProtocolVersion::TLSv1_3),
        tls.negotiated_cipher_suite(),
        tls.peer_certificates(),
    )
}

/// The policy's choice for a finished handshake; never `Offload` when
/// ciphertext past the handshake was read already (the kernel cannot take it).
pub(super) fn decide_path(
    plan: &Option<KtlsPlan>,
    tls: &UnbufferedServerConnection,
    unread_bytes: usize,
) -> Decision {
    match plan {
        Some(plan) => crate::ktls::decide_handoff(
            plan.mode,
            &plan.support,
            Some(
                tls.protocol_version()
                    .unwrap_or(rustls::ProtocolVersion::TLSv1_3),
            ),
            tls.negotiated_cipher_suite(),
            unread_bytes,
        ),
        None => Decision::Userspace(UserspaceReason::CipherUnsupported),
    }
}
