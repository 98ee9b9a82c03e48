//! The server, driven as the engine drives one: the handshake through the
//! engine's driver with record-exact or greedy reads, then the kernel's
//! plaintext and control records.

use super::*;

/// What the handshake left for the switch.
pub(crate) struct Handoff {
    /// Plaintext rustls decrypted past the handshake: it goes to the framer
    /// before the first kernel read.
    pub(crate) plaintext: Vec<u8>,
    /// Records rustls decrypted after the handshake.
    pub(crate) userspace_records: usize,
    /// Bytes read with an exact length to finish a record cut by a read.
    pub(crate) boundary_reads_bytes: usize,
}

pub(crate) fn read_exact_or_err(sock: &mut TcpStream, buf: &mut [u8]) -> Result<(), String> {
    sock.read_exact(buf)
        .map_err(|e| format!("handshake read: {e}"))
}

/// Drives an UnbufferedServerConnection to the end of the handshake and to a
/// record boundary, through the engine's handshake driver; only the reads
/// (record-exact or greedy) and writes are this example's.
pub(crate) fn server_handshake(
    sock: &mut TcpStream,
    conn: &mut UnbufferedServerConnection,
    reads: ServerReads,
) -> Result<Handoff, String> {
    let mut incoming = vec![0u8; HANDSHAKE_BUF_BYTES];
    let mut filled = 0usize;
    let mut outgoing = Vec::new();
    let mut handoff = Handoff {
        plaintext: Vec::new(),
        userspace_records: 0,
        boundary_reads_bytes: 0,
    };
    loop {
        // Only reachable after the handshake: records that arrived with
        // Finished. rustls has already advanced its read seq.
        let (plaintext, records) = (&mut handoff.plaintext, &mut handoff.userspace_records);
        let d = driver::drive(
            conn,
            &mut incoming[..filled],
            &mut outgoing,
            &mut |p: &[u8]| {
                plaintext.extend_from_slice(p);
                *records += 1;
                Ok::<(), Infallible>(())
            },
        );
        if !outgoing.is_empty() {
            sock.write_all(&outgoing)
                .map_err(|e| format!("handshake write: {e}"))?;
            outgoing.clear();
        }
        incoming.copy_within(d.consumed..filled, 0);
        filled -= d.consumed;
        let progress = d.result.map_err(|e| match e {
            DriveError::Tls(e) => format!("handshake: {e}"),
            DriveError::Record(e) => format!("leftover record: {e}"),
            DriveError::Encode(e) => format!("encode: {e:?}"),
            DriveError::Plain(never) => match never {},
        })?;
        match progress {
            Progress::Traffic => {
                // The handshake is over and every whole record has been
                // processed; what is left is at most the start of one record.
                let b = ktls::record_boundary(&incoming[..filled]).map_err(|e| e.to_string())?;
                assert_eq!(b.whole_bytes, 0, "rustls leaves no whole record behind");
                if b.is_aligned() {
                    return Ok(handoff);
                }
                // Finish the cut record with an exact read, then let rustls
                // decrypt it: the kernel cannot take over mid-record.
                let end = filled + b.missing_bytes;
                read_exact_or_err(sock, &mut incoming[filled..end])?;
                handoff.boundary_reads_bytes += b.missing_bytes;
                filled = end;
            }
            Progress::NeedMore => match reads {
                ServerReads::RecordExact => {
                    let b =
                        ktls::record_boundary(&incoming[..filled]).map_err(|e| e.to_string())?;
                    let want = if b.missing_bytes > 0 {
                        b.missing_bytes
                    } else {
                        ringest::record::HEADER_LEN
                    };
                    let end = filled + want;
                    if end > incoming.len() {
                        return Err("handshake record larger than the buffer".into());
                    }
                    read_exact_or_err(sock, &mut incoming[filled..end])?;
                    filled = end;
                }
                ServerReads::Greedy => {
                    let end = (filled + GREEDY_READ_BYTES).min(incoming.len());
                    let n = sock
                        .read(&mut incoming[filled..end])
                        .map_err(|e| format!("handshake read: {e}"))?;
                    if n == 0 {
                        return Err("EOF during the handshake".into());
                    }
                    filled += n;
                }
            },
            Progress::PeerClosed | Progress::Closed => {
                return Err("peer closed during the handshake".into())
            }
        }
    }
}

/// How the kernel-side read loop ended.
#[derive(Debug)]
pub(crate) enum End {
    Control(ControlRecord, ControlAction),
    ControlParseError(String),
    Eof,
    ReadError(io::Error),
}

pub(crate) struct KernelRead {
    pub(crate) plaintext: Vec<u8>,
    pub(crate) controls: Vec<ControlRecord>,
    pub(crate) rekeys: usize,
    pub(crate) end: End,
    /// What the kernel did on the read after a KeyUpdate it cannot follow.
    pub(crate) after_unfollowed_key_update: Option<String>,
}

pub(crate) fn errno_text(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::EBADMSG) => "EBADMSG".into(),
        Some(libc::EIO) => "EIO".into(),
        Some(libc::EINVAL) => "EINVAL".into(),
        Some(libc::EMSGSIZE) => "EMSGSIZE".into(),
        Some(libc::EKEYEXPIRED) => "EKEYEXPIRED".into(),
        Some(libc::ECONNRESET) => "ECONNRESET".into(),
        Some(libc::EAGAIN) => "EAGAIN (timeout)".into(),
        _ => e.to_string(),
    }
}

pub(crate) fn kernel_read_loop(
    sock: &mut TcpStream,
    kconn: &mut rustls::kernel::KernelConnection<rustls::server::ServerConnectionData>,
    support: &KtlsSupport,
) -> KernelRead {
    let fd = sock.as_raw_fd();
    let version = ktls::KtlsVersion::from_rustls(kconn.protocol_version()).expect("1.2 or 1.3");
    let mut out = KernelRead {
        plaintext: Vec::new(),
        controls: Vec::new(),
        rekeys: 0,
        end: End::Eof,
        after_unfollowed_key_update: None,
    };
    let mut buf = vec![0u8; 64 * 1024];
    let mut record = vec![0u8; ktls::CONTROL_RECORD_BYTES_MIN + 1024];
    // The engine's policy on control records, with its limits.
    let mut budget = ringest::record::ControlBudget::new(&ringest::record::ReaderLimits::default());
    loop {
        match sock.read(&mut buf) {
            Ok(0) => {
                out.end = End::Eof;
                return out;
            }
            Ok(n) => {
                budget.on_data();
                out.plaintext.extend_from_slice(&buf[..n]);
            }
            Err(e) if e.raw_os_error() == Some(libc::EIO) => {
                // Not application data: fetch the record with its type.
                let (content_type, n) = match ktls::recv_record(fd, &mut record) {
                    Ok(r) => r,
                    Err(e) => {
                        out.end = End::ReadError(e);
                        return out;
                    }
                };
                if content_type == ktls::CONTENT_TYPE_APPLICATION_DATA {
                    out.plaintext.extend_from_slice(&record[..n]);
                    continue;
                }
                let rec = match ktls::parse_control_record(content_type, &record[..n]) {
                    Ok(rec) => rec,
                    Err(e) => {
                        out.end = End::ControlParseError(e.to_string());
                        let _ = ktls::send_alert(fd, 2, 10); // unexpected_message
                        return out;
                    }
                };
                out.controls.push(rec);
                let action = ktls::action_for(&rec, version, support.tls13_rekey, &mut budget);
                match action {
                    ControlAction::Ignore => continue,
                    ControlAction::Rekey { .. } => {
                        let installed = kconn
                            .update_rx_secret()
                            .map_err(|e| io::Error::other(e.to_string()))
                            .and_then(|(seq, secrets)| {
                                let rx = CryptoInfo::new(kconn.protocol_version(), seq, &secrets)
                                    .map_err(io::Error::other)?;
                                ktls::set_rx(fd, &rx)
                            });
                        if let Err(e) = installed {
                            out.end = End::ReadError(e);
                            return out;
                        }
                        out.rekeys += 1;
                        continue;
                    }
                    ControlAction::CloseRekeyUnsupported => {
                        // Close at once: the kernel has not touched the next
                        // record (under the peer's new key) yet, so the
                        // socket is still sound and close_notify goes out.
                        let sent = match ktls::send_close_notify(fd) {
                            Ok(()) => "close_notify sent".to_string(),
                            Err(e) => format!("close_notify failed: {}", errno_text(&e)),
                        };
                        // Then, to document this kernel: what one more read
                        // does with the record under the new key.
                        let next = match sock.read(&mut buf) {
                            Ok(0) => "next read: EOF".to_string(),
                            Ok(n) => format!("next read: {n} bytes (!)"),
                            Err(e) => format!("next read: {}", errno_text(&e)),
                        };
                        out.after_unfollowed_key_update = Some(format!("{sent}, then {next}"));
                    }
                    ControlAction::Finish => {
                        // Every byte before close_notify has been read.
                        if let Err(e) = ktls::send_close_notify(fd) {
                            out.end = End::ReadError(e);
                            return out;
                        }
                    }
                    ControlAction::CloseAlert { .. } | ControlAction::CloseProtocolError(_) => {}
                }
                out.end = End::Control(rec, action);
                return out;
            }
            Err(e) => {
                out.end = End::ReadError(e);
                return out;
            }
        }
    }
}
