//! After the handshake, in the kernel (kTLS): the switch once the last
//! handshake flight is sent, control records read with `recvmsg`, and the
//! kernel's refusals.

use super::*;

impl Conn {
    /// Hands the socket to the kernel: call only once every byte the
    /// handshake produced has been sent (`TLS_TX` would wrap anything
    /// still queued a second time). On error the connection must close.
    pub fn enable_ktls(&mut self, sock: &mut impl KtlsSocket) -> Result<(), CloseReason> {
        let phase = std::mem::replace(&mut self.phase, Phase::Closed);
        let Phase::KtlsPending(pending) = phase else {
            self.phase = phase;
            return Ok(());
        };
        let (tx_seq, rx_seq) = (pending.tx_seq(), pending.rx_seq());
        let offloaded = pending.enable(sock).map_err(CloseReason::Ktls)?;
        log::debug!(
            "{}: kTLS enabled ({}, tx seq {tx_seq}, rx seq {rx_seq}); data path: kernel",
            self.meta.peer,
            offloaded.version().label(),
        );
        self.phase = Phase::Ktls(Box::new(offloaded));
        self.events.tls_path = Some(path_label(Decision::Offload));
        Ok(())
    }

    /// A receive on the offloaded socket failed with EIO: the record at its
    /// head is not application data. Reads it (`recvmsg`, synchronously: it
    /// is rare and already decrypted) and acts on it.
    pub fn on_ktls_control(
        &mut self,
        sock: &mut impl KtlsSocket,
        now_ns: u64,
        batcher: &mut dyn FrameSink,
    ) -> Result<Outcome, CloseReason> {
        let Phase::Ktls(off) = &mut self.phase else {
            return Ok(Outcome::Continue);
        };
        let outcome = off.on_control(sock, &mut self.events.ktls_control);
        match outcome {
            ControlOutcome::Data(plain) => {
                self.feed_plain(&plain, now_ns, batcher)?;
                Ok(Outcome::Continue)
            }
            ControlOutcome::Continue => Ok(Outcome::Continue),
            ControlOutcome::Finished | ControlOutcome::Eof => {
                self.phase = Phase::Closed;
                self.finish_frames(now_ns, batcher)?;
                Ok(Outcome::PeerClosed)
            }
            ControlOutcome::Close(reason) => {
                if reason == KtlsClose::KeyUpdateUnfollowable {
                    // Our choice, not the peer's fault: keep what framed
                    // cleanly before the KeyUpdate (a half frame is counted
                    // by the decoder).
                    let _ = self.finish_frames(now_ns, batcher);
                }
                self.phase = Phase::Closed;
                Err(CloseReason::Ktls(reason))
            }
        }
    }

    /// A receive on an offloaded socket failed with `errno`. `Some` when the
    /// kernel refused what the peer sent (garbage, a forged record); `None`
    /// for errors any socket has (reset), which close as usual.
    pub fn on_ktls_recv_error(&mut self, errno: i32) -> Option<CloseReason> {
        if !self.is_offloaded() || !KtlsClose::is_kernel_refusal(errno) {
            return None;
        }
        self.phase = Phase::Closed;
        Some(CloseReason::Ktls(KtlsClose::from_recv_errno(errno)))
    }
}
