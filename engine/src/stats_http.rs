//! The stats endpoint: GET /metrics in Prometheus text format. Control plane:
//! a plain blocking thread, one request per connection, bounded reads.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use crate::stats::Stats;

const MAX_REQUEST_BYTES: usize = 8192;

pub fn spawn(addr: SocketAddr, stats: Arc<Stats>) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr)?;
    std::thread::Builder::new().name("ringest-stats".into()).spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
            let mut buf = vec![0u8; MAX_REQUEST_BYTES];
            let mut got = 0;
            while got < buf.len() {
                match stream.read(&mut buf[got..]) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got += n,
                }
                if buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            let req = &buf[..got];
            let (status, body) = if req.starts_with(b"GET /metrics ") || req.starts_with(b"GET / ") {
                ("200 OK", stats.render_prometheus())
            } else {
                ("404 Not Found", "try GET /metrics\n".to_string())
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    })?;
    Ok(())
}
