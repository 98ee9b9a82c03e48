//! loadgen's own TLS 1.3 record layer for the data phase (sans-IO).
//!
//! rustls does the handshake; then the connection is converted with
//! `dangerous_into_kernel_connection` (the API meant for kTLS) and records are
//! sealed here, in place, in the output buffer the messages were encoded
//! into. Compared with rustls's record path this saves, per record, a
//! plaintext copy, an allocation and rustls's bookkeeping: about a quarter of
//! the sender's CPU with one record per message (see README).
//!
//! rustls still owns the secrets: on a KeyUpdate (ours when the suite's
//! confidentiality limit nears, or the server's) `KernelConnection` derives
//! the next traffic secret. Session tickets are handed to it too.
//!
//! Record protection is RFC 8446 section 5.2: nonce = iv XOR seq,
//! AAD = the 5-byte record header, plaintext = content || inner type.

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use rustls::client::ClientConnectionData;
use rustls::kernel::KernelConnection;
use rustls::{AlertDescription, ConnectionTrafficSecrets};

pub const CONTENT_ALERT: u8 = 21;
pub const CONTENT_HANDSHAKE: u8 = 22;
pub const CONTENT_APPDATA: u8 = 23;
const CONTENT_CCS: u8 = 20;
const HEADER_LEN: usize = 5;
const TAG_LEN: usize = 16;
/// Largest TLSPlaintext fragment (RFC 8446 5.1).
pub const PLAINTEXT_MAX: usize = 16384;
/// Largest ciphertext payload accepted from the peer (RFC 8446 5.2).
const CIPHERTEXT_MAX: usize = PLAINTEXT_MAX + 256;
const HS_NEW_SESSION_TICKET: u8 = 4;
const HS_KEY_UPDATE: u8 = 24;
/// Rekey this many records before the suite's confidentiality limit.
const REKEY_MARGIN: u64 = 1 << 12;

/// Why the record layer gave up; the connection is then failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordError {
    /// The peer sent a fatal alert.
    Alert(AlertDescription),
    /// A record did not decrypt (bad key, sequence or corruption).
    Decrypt,
    /// A malformed record or handshake message.
    Decode(&'static str),
    /// rustls refused a key update or ticket.
    Rustls(String),
}

impl RecordError {
    /// Same wording as rustls's errors, so error counts read alike.
    pub fn describe(&self) -> String {
        match self {
            RecordError::Alert(d) => format!("received fatal alert: {d:?}"),
            RecordError::Decrypt => "cannot decrypt peer's message".into(),
            RecordError::Decode(what) => format!("received corrupt message: {what}"),
            RecordError::Rustls(e) => e.clone(),
        }
    }
}

/// One direction's AEAD state.
struct Keys {
    key: LessSafeKey,
    iv: [u8; 12],
    seq: u64,
}

impl Keys {
    fn new(seq: u64, secrets: ConnectionTrafficSecrets) -> Result<Self, RecordError> {
        let (alg, key, iv) = match &secrets {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (&aead::AES_128_GCM, key, iv),
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (&aead::AES_256_GCM, key, iv),
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
                (&aead::CHACHA20_POLY1305, key, iv)
            }
            _ => return Err(RecordError::Rustls("unsupported AEAD".into())),
        };
        let key = UnboundKey::new(alg, key.as_ref())
            .map_err(|_| RecordError::Rustls("bad AEAD key".into()))?;
        let iv: [u8; 12] = iv
            .as_ref()
            .try_into()
            .map_err(|_| RecordError::Rustls("bad AEAD iv".into()))?;
        Ok(Keys {
            key: LessSafeKey::new(key),
            iv,
            seq,
        })
    }

    fn nonce(&self) -> Nonce {
        let mut n = self.iv;
        for (b, s) in n[4..].iter_mut().zip(self.seq.to_be_bytes()) {
            *b ^= s;
        }
        Nonce::assume_unique_for_key(n)
    }
}

/// Things the peer's records asked of us.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Received {
    /// At least one record was processed.
    pub records: u64,
    /// The peer sent close_notify.
    pub close_notify: bool,
}

/// A TLS 1.3 client connection after its handshake.
pub struct Direct {
    tx: Keys,
    rx: Keys,
    kconn: KernelConnection<ClientConnectionData>,
    /// Records sent under one key before rekeying.
    rekey_after: u64,
    /// Records sent since the last rekey.
    since_rekey: u64,
    pub key_updates_sent: u64,
}

impl Direct {
    /// Takes over from a rustls connection that finished its handshake and has
    /// nothing left to send. `rekey_after`: override of the records-per-key
    /// limit (tests); otherwise the suite's confidentiality limit less a margin.
    pub fn from_rustls(
        conn: rustls::client::UnbufferedClientConnection,
        rekey_after: Option<u64>,
    ) -> Result<Self, RecordError> {
        let (secrets, kconn) = conn
            .dangerous_into_kernel_connection()
            .map_err(|e| RecordError::Rustls(e.to_string()))?;
        let limit = kconn
            .negotiated_cipher_suite()
            .tls13()
            .map(|s| s.common.confidentiality_limit)
            .unwrap_or(u64::MAX);
        let rekey_after = rekey_after
            .unwrap_or_else(|| limit.saturating_sub(REKEY_MARGIN))
            .max(1);
        Ok(Direct {
            tx: Keys::new(secrets.tx.0, secrets.tx.1)?,
            rx: Keys::new(secrets.rx.0, secrets.rx.1)?,
            kconn,
            rekey_after,
            since_rekey: secrets.tx.0,
            key_updates_sent: 0,
        })
    }

    /// Starts a record at the end of `out`: reserves its header. Write the
    /// content after it, then call `seal` with the returned offset.
    pub fn begin(out: &mut Vec<u8>) -> usize {
        let start = out.len();
        out.extend_from_slice(&[0u8; HEADER_LEN]);
        start
    }

    /// Encrypts the record begun at `start` (content = `out[start + 5..]`, at
    /// most `PLAINTEXT_MAX` bytes) in place and appends its tag.
    pub fn seal(
        &mut self,
        out: &mut Vec<u8>,
        start: usize,
        inner_type: u8,
    ) -> Result<(), RecordError> {
        debug_assert!(out.len() - start - HEADER_LEN <= PLAINTEXT_MAX);
        if self.since_rekey >= self.rekey_after && inner_type == CONTENT_APPDATA {
            // Rekey first: move this record's content after the KeyUpdate.
            let content = out.split_off(start + HEADER_LEN);
            out.truncate(start);
            self.send_key_update(out, false)?;
            let start = Self::begin(out);
            out.extend_from_slice(&content);
            return self.seal_now(out, start, inner_type);
        }
        self.seal_now(out, start, inner_type)
    }

    fn seal_now(
        &mut self,
        out: &mut Vec<u8>,
        start: usize,
        inner_type: u8,
    ) -> Result<(), RecordError> {
        out.push(inner_type);
        let len = out.len() - start - HEADER_LEN + TAG_LEN;
        let header = [CONTENT_APPDATA, 3, 3, (len >> 8) as u8, len as u8];
        out[start..start + HEADER_LEN].copy_from_slice(&header);
        let nonce = self.tx.nonce();
        let tag = self
            .tx
            .key
            .seal_in_place_separate_tag(nonce, Aad::from(header), &mut out[start + HEADER_LEN..])
            .map_err(|_| RecordError::Rustls("seal failed".into()))?;
        out.extend_from_slice(tag.as_ref());
        self.tx.seq += 1;
        self.since_rekey += 1;
        Ok(())
    }

    /// Appends a KeyUpdate (sealed with the current key) and switches to the
    /// next transmit key.
    fn send_key_update(
        &mut self,
        out: &mut Vec<u8>,
        request_update: bool,
    ) -> Result<(), RecordError> {
        let start = Self::begin(out);
        out.extend_from_slice(&[HS_KEY_UPDATE, 0, 0, 1, u8::from(request_update)]);
        self.seal_now(out, start, CONTENT_HANDSHAKE)?;
        let (seq, secrets) = self
            .kconn
            .update_tx_secret()
            .map_err(|e| RecordError::Rustls(e.to_string()))?;
        self.tx = Keys::new(seq, secrets)?;
        self.since_rekey = 0;
        self.key_updates_sent += 1;
        Ok(())
    }

    /// Appends a sealed close_notify alert.
    pub fn close_notify(&mut self, out: &mut Vec<u8>) -> Result<(), RecordError> {
        let start = Self::begin(out);
        out.extend_from_slice(&[1, 0]);
        self.seal_now(out, start, CONTENT_ALERT)
    }

    /// Decrypts and handles the complete records at the front of `input`.
    /// Returns the bytes consumed (a partial record is left for later) and
    /// what was received. Replies (a KeyUpdate) are appended to `out`.
    pub fn read(
        &mut self,
        input: &mut [u8],
        out: &mut Vec<u8>,
    ) -> Result<(usize, Received), RecordError> {
        let mut got = Received::default();
        let mut pos = 0;
        while input.len() - pos >= HEADER_LEN {
            let h = &input[pos..pos + HEADER_LEN];
            let (outer, len) = (h[0], usize::from(u16::from_be_bytes([h[3], h[4]])));
            if len > CIPHERTEXT_MAX {
                return Err(RecordError::Decode("record too long"));
            }
            if input.len() - pos - HEADER_LEN < len {
                break;
            }
            let header: [u8; HEADER_LEN] = [h[0], h[1], h[2], h[3], h[4]];
            let body = &mut input[pos + HEADER_LEN..pos + HEADER_LEN + len];
            pos += HEADER_LEN + len;
            got.records += 1;
            match outer {
                CONTENT_APPDATA => {}
                // A middlebox-compatibility ChangeCipherSpec: ignore.
                CONTENT_CCS => continue,
                // An unencrypted alert (the peer failed before keys).
                CONTENT_ALERT if body.len() == 2 => {
                    return match AlertDescription::from(body[1]) {
                        AlertDescription::CloseNotify => {
                            got.close_notify = true;
                            Ok((pos, got))
                        }
                        d => Err(RecordError::Alert(d)),
                    };
                }
                _ => return Err(RecordError::Decode("unexpected record type")),
            }
            let nonce = self.rx.nonce();
            let plain = self
                .rx
                .key
                .open_in_place(nonce, Aad::from(header), body)
                .map_err(|_| RecordError::Decrypt)?;
            self.rx.seq += 1;
            // Strip zero padding; the last nonzero byte is the real type.
            let end = plain
                .iter()
                .rposition(|&b| b != 0)
                .ok_or(RecordError::Decode("record without content type"))?;
            let (content, inner) = (&plain[..end], plain[end]);
            match inner {
                CONTENT_APPDATA => {}
                CONTENT_ALERT => {
                    let desc = *content.get(1).ok_or(RecordError::Decode("short alert"))?;
                    match AlertDescription::from(desc) {
                        AlertDescription::CloseNotify => got.close_notify = true,
                        d => return Err(RecordError::Alert(d)),
                    }
                }
                CONTENT_HANDSHAKE => {
                    let content = content.to_vec();
                    self.handshake_messages(&content, out)?;
                }
                _ => return Err(RecordError::Decode("unexpected inner content type")),
            }
            if got.close_notify {
                break;
            }
        }
        Ok((pos, got))
    }

    /// Post-handshake messages: tickets go to rustls; a KeyUpdate switches
    /// the receive key and, if asked, ours too.
    fn handshake_messages(
        &mut self,
        mut msgs: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), RecordError> {
        while msgs.len() >= 4 {
            let typ = msgs[0];
            let len = u32::from_be_bytes([0, msgs[1], msgs[2], msgs[3]]) as usize;
            let Some(body) = msgs.get(4..4 + len) else {
                // A message split across records: only tickets are that big,
                // and loadgen does not need them.
                return Ok(());
            };
            match typ {
                HS_NEW_SESSION_TICKET => {
                    self.kconn
                        .handle_new_session_ticket(body)
                        .map_err(|e| RecordError::Rustls(e.to_string()))?;
                }
                HS_KEY_UPDATE => {
                    let requested = match body {
                        [0] => false,
                        [1] => true,
                        _ => return Err(RecordError::Decode("bad KeyUpdate")),
                    };
                    let (seq, secrets) = self
                        .kconn
                        .update_rx_secret()
                        .map_err(|e| RecordError::Rustls(e.to_string()))?;
                    self.rx = Keys::new(seq, secrets)?;
                    if requested {
                        self.send_key_update(out, false)?;
                    }
                }
                _ => return Err(RecordError::Decode("unexpected handshake message")),
            }
            msgs = &msgs[4 + len..];
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use std::io::{Read, Write};
    use std::sync::Arc;

    use ringest::tls::driver::{self, Progress};
    use rustls::client::UnbufferedClientConnection;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
    use rustls::{ClientConfig, RootCertStore, ServerConfig, ServerConnection};

    fn configs(suite: &str) -> (Arc<ClientConfig>, Arc<ServerConfig>) {
        let leaf = testkit::self_signed(&testkit::LeafSpec::server(1));
        let der = CertificateDer::from(leaf.cert_der.clone());
        let mut roots = RootCertStore::empty();
        roots.add(der.clone()).unwrap();
        let opts = crate::tls::CryptoOptions {
            cipher: Some(suite.into()),
            ..Default::default()
        };
        let provider = crate::tls::provider(&opts).unwrap();
        let mut client = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        client.enable_secret_extraction = true;
        let server = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![der],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf.key_der.clone())),
            )
            .unwrap();
        (Arc::new(client), Arc::new(server))
    }

    fn to_server(s: &mut ServerConnection, bytes: &mut Vec<u8>) {
        let mut rd = &bytes[..];
        while !rd.is_empty() {
            s.read_tls(&mut rd).unwrap();
            s.process_new_packets().unwrap();
        }
        bytes.clear();
    }

    /// Runs an in-memory handshake between an unbuffered client and a
    /// buffered rustls server. Returns them once the client can write.
    fn handshake(
        client: Arc<ClientConfig>,
        server: Arc<ServerConfig>,
    ) -> (UnbufferedClientConnection, ServerConnection) {
        let mut c =
            UnbufferedClientConnection::new(client, ServerName::try_from("localhost").unwrap())
                .unwrap();
        let mut s = ServerConnection::new(server).unwrap();
        let mut c_in: Vec<u8> = Vec::new();
        let mut c_out: Vec<u8> = Vec::new();
        for _ in 0..16 {
            let d = driver::drive(&mut c, &mut c_in, &mut c_out, &mut |_: &[u8]| {
                Ok::<(), Infallible>(())
            });
            c_in.drain(..d.consumed);
            let progress = d.result.expect("client handshake");
            to_server(&mut s, &mut c_out);
            if progress == Progress::Traffic {
                return (c, s);
            }
            // Needs the server's flight.
            while s.wants_write() {
                s.write_tls(&mut c_in).unwrap();
            }
        }
        panic!("handshake did not finish");
    }

    #[test]
    fn rustls_server_reads_our_records_and_key_updates() {
        for suite in [
            "TLS13_AES_128_GCM_SHA256",
            "TLS13_AES_256_GCM_SHA384",
            "TLS13_CHACHA20_POLY1305_SHA256",
        ] {
            let (cc, sc) = configs(suite);
            let (c, mut s) = handshake(cc, sc);
            // Rekey every 3 records to exercise KeyUpdate.
            let mut d = Direct::from_rustls(c, Some(3)).unwrap();
            let mut wire = Vec::new();
            let mut expected = Vec::new();
            for i in 0..10u32 {
                let start = Direct::begin(&mut wire);
                let msg = format!("record {i} {}", "x".repeat(i as usize * 100));
                wire.extend_from_slice(msg.as_bytes());
                expected.extend_from_slice(msg.as_bytes());
                d.seal(&mut wire, start, CONTENT_APPDATA).unwrap();
            }
            assert!(d.key_updates_sent >= 3, "{suite}");
            d.close_notify(&mut wire).unwrap();
            let mut rd = &wire[..];
            let mut got = Vec::new();
            while !rd.is_empty() {
                s.read_tls(&mut rd).unwrap();
                let st = s.process_new_packets().unwrap();
                let mut buf = vec![0u8; st.plaintext_bytes_to_read()];
                s.reader().read_exact(&mut buf).unwrap();
                got.extend_from_slice(&buf);
                if st.peer_has_closed() {
                    break;
                }
            }
            assert_eq!(got, expected, "{suite}");
        }
    }

    #[test]
    fn we_read_the_servers_tickets_data_key_update_and_close() {
        let (cc, sc) = configs("TLS13_AES_128_GCM_SHA256");
        let (c, mut s) = handshake(cc, sc);
        let mut d = Direct::from_rustls(c, None).unwrap();
        // The server's tickets were queued after our Finished.
        let mut wire = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut wire).unwrap();
        }
        s.writer().write_all(b"hello").unwrap();
        s.refresh_traffic_keys().unwrap();
        s.writer().write_all(b"again").unwrap();
        s.send_close_notify();
        while s.wants_write() {
            s.write_tls(&mut wire).unwrap();
        }
        let mut out = Vec::new();
        // Fed in two pieces: the first ends inside a record.
        let cut = wire.len() - 3;
        let (n1, g1) = d.read(&mut wire[..cut], &mut out).unwrap();
        assert!(n1 < cut && !g1.close_notify);
        let mut rest = wire[n1..].to_vec();
        let (n2, g2) = d.read(&mut rest, &mut out).unwrap();
        assert_eq!(n2, rest.len());
        assert!(g2.close_notify);
        // And corruption is caught.
        let (cc, sc) = configs("TLS13_AES_128_GCM_SHA256");
        let (c, mut s) = handshake(cc, sc);
        let mut d = Direct::from_rustls(c, None).unwrap();
        let mut wire = Vec::new();
        s.writer().write_all(b"hello").unwrap();
        while s.wants_write() {
            s.write_tls(&mut wire).unwrap();
        }
        let last = wire.len() - 1;
        wire[last] ^= 1;
        let mut out = Vec::new();
        assert_eq!(
            d.read(&mut wire, &mut out).map(|_| ()),
            Err(RecordError::Decrypt)
        );
    }
}
