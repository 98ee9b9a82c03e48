//! The client: a thread with a buffered rustls `ClientConnection` that
//! sends the case's messages and reports how the server ended it.

use super::*;

#[derive(Default, Debug)]
pub(crate) struct ClientReport {
    /// The server's close_notify arrived (our kernel TX path works).
    pub(crate) saw_server_close_notify: bool,
    pub(crate) error: Option<String>,
}

pub(crate) fn run_client(
    addr: SocketAddr,
    cfg: Arc<ClientConfig>,
    twist: Twist,
    messages: usize,
) -> ClientReport {
    let mut report = ClientReport::default();
    if let Err(e) = client_inner(addr, cfg, twist, messages, &mut report) {
        report.error = Some(e.to_string());
    }
    report
}

pub(crate) fn client_inner(
    addr: SocketAddr,
    cfg: Arc<ClientConfig>,
    twist: Twist,
    messages: usize,
    report: &mut ClientReport,
) -> io::Result<()> {
    let sock = TcpStream::connect(addr)?;
    sock.set_nodelay(true)?;
    sock.set_read_timeout(Some(Duration::from_millis(SOCKET_TIMEOUT_MS)))?;
    let name = ServerName::try_from("localhost").expect("name");
    let conn = ClientConnection::new(cfg, name).map_err(io::Error::other)?;
    let mut tls = StreamOwned::new(conn, sock);
    let mut next = 0;
    if twist == Twist::EarlyWrite {
        // Buffered by rustls until the handshake is done, then sent right
        // behind Finished, in the same write.
        let early = 40.min(messages);
        tls.conn.writer().write_all(&messages_bytes(0..early))?;
        next = early;
    }
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    let mut batch = 0;
    while next < messages {
        if let Twist::KeyUpdateAfter(k) = twist {
            if next == k {
                tls.flush()?;
                tls.conn.refresh_traffic_keys().map_err(io::Error::other)?;
            }
        }
        if let Twist::GarbageAfter(k) = twist {
            if next == k {
                tls.flush()?;
                tls.sock.write_all(GARBAGE)?;
                break;
            }
        }
        let mut end = (next + WRITE_BATCHES[batch % WRITE_BATCHES.len()]).min(messages);
        if let Twist::KeyUpdateAfter(k) | Twist::GarbageAfter(k) = twist {
            if next < k {
                end = end.min(k);
            }
        }
        tls.write_all(&messages_bytes(next..end))?;
        next = end;
        batch += 1;
    }
    if !matches!(twist, Twist::GarbageAfter(_)) {
        tls.conn.send_close_notify();
        tls.flush()?;
    }
    // Wait for the server's close_notify, sent by its kernel.
    let mut sink = Vec::new();
    match tls.read_to_end(&mut sink) {
        Ok(_) => report.saw_server_close_notify = true,
        Err(e) => return Err(e),
    }
    Ok(())
}
