//! Sending: messages encoded straight into the output buffer and sealed
//! as records in place, in batches of up to `write_bytes`.

use super::*;

impl ClientConn {
    pub(super) fn pump(&mut self, ctx: &mut Ctx<'_>, p: &mut Progress) -> Result<(), ConnError> {
        let mut budget = ctx.turn_bytes;
        loop {
            if !self.flush(ctx, p)? {
                return Ok(());
            }
            if self.sent >= self.quota {
                self.enter_closing(ctx.now_ns, ctx.close_timeout_ns, p);
                return self.close_step(ctx, p);
            }
            if budget == 0 {
                return Ok(());
            }
            let mut n = self.quota - self.seq;
            if let Some(s) = &self.sched {
                // What is due by the last tick (schedule::Tick): the rest
                // goes at the next one, in full records; each message's
                // latency still counts from its own intended time.
                let now = ctx.tick.floor(sys::mono_ns());
                let due = s.due_count(now).saturating_sub(self.seq);
                if due == 0 {
                    self.next_due_ns = ctx.tick.ceil(s.intended_ns(self.seq));
                    return Ok(());
                }
                n = n.min(due);
            }
            let bytes = self.fill(n, ctx)?;
            budget = budget.saturating_sub(bytes.max(1));
        }
    }

    /// Encodes up to `n` messages into `out` as records of at most
    /// `records_per_write` messages (and 16 KiB), until about `write_bytes`
    /// are queued. With TLS each record is sealed where it was encoded.
    pub(super) fn fill(&mut self, n: u64, ctx: &Ctx<'_>) -> Result<usize, ConnError> {
        debug_assert!(self.fill_msgs == 0 && self.out.is_empty() && n > 0);
        self.enc.set_time_us(sys::unix_us());
        self.fill_first = self.seq;
        let mut msgs = 0;
        let mut bytes = 0;
        while msgs < n && (bytes == 0 || bytes < ctx.write_bytes) {
            let want = ctx.records_per_write.min(n - msgs);
            let (k, b) = self.fill_one_record(want)?;
            self.seq += k;
            msgs += k;
            bytes += b;
        }
        self.fill_msgs = msgs;
        self.fill_bytes = bytes as u64;
        Ok(bytes)
    }

    /// One record (one chunk with plain TCP): returns messages and framed bytes.
    pub(super) fn fill_one_record(&mut self, want: u64) -> Result<(u64, usize), ConnError> {
        let seq = self.seq;
        match &mut self.tls {
            None => {
                let before = self.out.len();
                let k = self
                    .enc
                    .fill_record(seq, want, TLS_PLAINTEXT_MAX_BYTES, &mut self.out)
                    .map_err(ConnError::Encode)?;
                Ok((k, self.out.len() - before))
            }
            Some(Tls::Direct(d)) => {
                let tls_err = |e: RecordError| ConnError::Tls(e.describe());
                if self.enc.framed_len(seq) > TLS_PLAINTEXT_MAX_BYTES {
                    // A message larger than a record spans several records.
                    self.record.clear();
                    self.enc
                        .encode(seq, &mut self.record)
                        .map_err(ConnError::Encode)?;
                    for chunk in self.record.chunks(TLS_PLAINTEXT_MAX_BYTES) {
                        let start = Direct::begin(&mut self.out);
                        self.out.extend_from_slice(chunk);
                        d.seal(&mut self.out, start, tls13::CONTENT_APPDATA)
                            .map_err(tls_err)?;
                    }
                    return Ok((1, self.record.len()));
                }
                // Encode straight after the record header, seal in place.
                let start = Direct::begin(&mut self.out);
                let k = self
                    .enc
                    .fill_record(seq, want, TLS_PLAINTEXT_MAX_BYTES, &mut self.out)
                    .map_err(ConnError::Encode)?;
                let framed = self.out.len() - start - 5;
                d.seal(&mut self.out, start, tls13::CONTENT_APPDATA)
                    .map_err(tls_err)?;
                Ok((k, framed))
            }
            Some(Tls::Rustls(conn)) => {
                self.record.clear();
                let k = self
                    .enc
                    .fill_record(seq, want, TLS_PLAINTEXT_MAX_BYTES, &mut self.record)
                    .map_err(ConnError::Encode)?;
                let st = conn.process_tls_records(&mut self.inbuf[self.in_start..self.in_end]);
                let discard = st.discard;
                let res = match st.state {
                    Ok(ConnectionState::WriteTraffic(mut w)) => {
                        crate::tls::encrypt_into(&mut w, &self.record, &mut self.out)
                            .map_err(ConnError::Tls)
                    }
                    Ok(other) => Err(ConnError::Tls(format!(
                        "cannot send application data in state {other:?}"
                    ))),
                    Err(e) => Err(classify_tls(e, self.phase, self.confirmed)),
                };
                self.in_start += discard;
                res?;
                Ok((k, self.record.len()))
            }
        }
    }
}
