//! The connection's bytes: reading what the server sent, running rustls
//! (through the engine's handshake driver) or our TLS 1.3 reader over it,
//! and writing what is queued.

use super::*;

impl ClientConn {
    /// Runs rustls over the buffered input (through the engine's handshake
    /// driver) until it needs more input or has nothing left to do; what it
    /// wants sent is appended to `out`.
    pub(super) fn drive_rustls(&mut self) -> Result<(), ConnError> {
        let Some(Tls::Rustls(conn)) = &mut self.tls else {
            return Ok(());
        };
        // The driver hands control back at the server's close_notify; the
        // next call goes on from there.
        for _ in 0..3 {
            // The server is not expected to send data; discard it.
            let d = driver::drive(
                conn.as_mut(),
                &mut self.inbuf[self.in_start..self.in_end],
                &mut self.out,
                &mut |_: &[u8]| Ok::<(), Infallible>(()),
            );
            self.in_start += d.consumed;
            if d.consumed_established > 0 {
                // Bytes after our handshake: the server accepted us.
                self.confirmed = true;
            }
            match d.result {
                Ok(TlsProgress::NeedMore) => break,
                Ok(TlsProgress::Traffic) => {
                    self.hs_done = true;
                    break;
                }
                Ok(TlsProgress::PeerClosed) => self.peer_closed = true,
                Ok(TlsProgress::Closed) => {
                    self.peer_closed = true;
                    break;
                }
                Err(DriveError::Tls(e) | DriveError::Record(e)) => {
                    return Err(classify_tls(e, self.phase, self.confirmed))
                }
                Err(DriveError::Encode(e)) => return Err(ConnError::Tls(e.to_string())),
                Err(DriveError::Plain(never)) => match never {},
            }
        }
        Ok(())
    }

    /// Reads and processes whatever the server sent. Sets `eof` at EOF.
    pub(super) fn read_incoming(&mut self) -> Result<(), ConnError> {
        if !self.readable || self.stream.is_none() {
            return Ok(());
        }
        for _ in 0..READS_PER_TURN_MAX {
            if self.in_start == self.in_end {
                self.in_start = 0;
                self.in_end = 0;
            }
            if self.inbuf.is_empty() {
                self.inbuf = vec![0u8; INBUF_START_BYTES];
            }
            if self.in_end == self.inbuf.len() {
                if self.in_start > 0 {
                    // Same bytes, moved to the front: rustls sees the same input.
                    self.inbuf.copy_within(self.in_start..self.in_end, 0);
                    self.in_end -= self.in_start;
                    self.in_start = 0;
                } else if self.inbuf.len() < INBUF_MAX_BYTES {
                    self.inbuf.resize(self.inbuf.len() * 2, 0);
                } else {
                    return Err(ConnError::Tls("server flight larger than 256 KiB".into()));
                }
            }
            let Some(stream) = self.stream.as_mut() else {
                return Ok(());
            };
            let n = match stream.read(&mut self.inbuf[self.in_end..]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // An alert may have arrived just before the reset.
                    self.process_incoming()?;
                    return Err(classify_io(&e));
                }
            };
            if n == 0 {
                self.eof = true;
                self.readable = false;
                break;
            }
            self.in_end += n;
            self.process_incoming()?;
        }
        if self.in_start == self.in_end && self.phase == Phase::Holding {
            // Idle connections keep no buffer (memory per idle connection).
            self.inbuf = Vec::new();
            self.in_start = 0;
            self.in_end = 0;
        }
        Ok(())
    }

    pub(super) fn process_incoming(&mut self) -> Result<(), ConnError> {
        match &mut self.tls {
            None => {
                // Plain TCP: the server has nothing to say; discard.
                self.in_start = self.in_end;
                self.confirmed = true;
                Ok(())
            }
            Some(Tls::Rustls(_)) => self.drive_rustls(),
            Some(Tls::Direct(d)) => {
                let (used, got) = d
                    .read(&mut self.inbuf[self.in_start..self.in_end], &mut self.out)
                    .map_err(|e| classify_record(e, self.phase, self.confirmed))?;
                self.in_start += used;
                if got.records > 0 {
                    self.confirmed = true;
                }
                if got.close_notify {
                    self.peer_closed = true;
                }
                Ok(())
            }
        }
    }

    /// Writes `out`. Returns false when the socket is full.
    pub(super) fn flush_out(&mut self, p: &mut Progress) -> Result<bool, ConnError> {
        let Some(stream) = &mut self.stream else {
            return Ok(true);
        };
        while self.out_pos < self.out.len() {
            match stream.write(&self.out[self.out_pos..]) {
                Ok(n) => {
                    self.out_pos += n;
                    p.wire_bytes += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.writable = false;
                    return Ok(false);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(classify_io(&e)),
            }
        }
        self.out.clear();
        self.out_pos = 0;
        Ok(true)
    }

    /// Flushes, and when the current batch is fully written counts it as sent.
    /// On a write failure, first looks for an alert the server sent before
    /// closing, which explains the failure better than "reset".
    pub(super) fn flush(&mut self, ctx: &mut Ctx<'_>, p: &mut Progress) -> Result<bool, ConnError> {
        let done = match self.flush_out(p) {
            Ok(done) => done,
            Err(ConnError::Reset) => {
                self.readable = true;
                self.read_incoming()?;
                return Err(ConnError::Reset);
            }
            Err(e) => return Err(e),
        };
        if done && self.fill_msgs > 0 {
            self.sent += self.fill_msgs;
            p.sent += self.fill_msgs;
            p.sent_bytes += self.fill_bytes;
            if let (Some(hist), Some(sched)) = (ctx.latency.as_deref_mut(), &self.sched) {
                // Latency from each message's intended time to now, when its
                // last byte has been handed to the kernel.
                let now = sys::mono_ns();
                for seq in self.fill_first..self.fill_first + self.fill_msgs {
                    let lat = now.saturating_sub(sched.intended_ns(seq)).max(1);
                    hist.saturating_record(lat);
                }
            }
            self.fill_msgs = 0;
            self.fill_bytes = 0;
        }
        Ok(done)
    }
}
