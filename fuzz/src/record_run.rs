//! Feeds a byte stream to the engine's [`RecordReader`] the way the
//! connection code does (append what arrived, process, drop what was
//! consumed, keep the partial record), checking the reader's contract at
//! every call.

use ringest::record::{ControlEvent, RecordError, RecordReader, PLAINTEXT_LEN_MAX};

/// What the reader made of a stream.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Fed {
    pub plaintext: Vec<u8>,
    pub event: Option<ControlEvent>,
    pub records: u32,
    pub key_updates: u32,
    pub key_update_requested: bool,
    /// Bytes consumed over all calls (up to the stop, if any).
    pub consumed: usize,
    /// The error that ended the stream, as `label: Debug`.
    pub error: Option<String>,
}

impl Fed {
    /// The error's label alone (`bad_record_header` carries header bytes
    /// "not yet received", which depend on how the stream was cut).
    pub fn error_label(&self) -> Option<&str> {
        self.error
            .as_deref()
            .map(|e| e.split(':').next().unwrap_or(e))
    }
}

fn describe(e: &RecordError) -> String {
    format!("{}: {e:?}", e.label())
}

/// Feeds `pieces` in order. Checked at every call: plaintext slices lie
/// inside the buffer, are non-empty and at most 2^14 bytes; `consumed` is
/// within the buffer; after an error or a stop event, the reader refuses
/// to go on.
pub fn feed(reader: &mut RecordReader, pieces: &[&[u8]]) -> Fed {
    let mut fed = Fed::default();
    let mut buf: Vec<u8> = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        let range = buf.as_ptr_range();
        let len = buf.len();
        let mut on_plaintext = |p: &[u8]| {
            assert!(!p.is_empty(), "empty plaintext delivered");
            assert!(
                p.len() <= PLAINTEXT_LEN_MAX,
                "plaintext of {} bytes",
                p.len()
            );
            let inside = range.start <= p.as_ptr() && p.as_ptr_range().end <= range.end;
            assert!(inside, "plaintext is not a slice of the buffer");
            fed.plaintext.extend_from_slice(p);
        };
        match reader.process(&mut buf, &mut on_plaintext) {
            Err(e) => {
                assert!(reader.is_stopped());
                assert!(!matches!(e, RecordError::Closed), "closed before a stop");
                fed.error = Some(describe(&e));
                break;
            }
            Ok(progress) => {
                assert!(
                    progress.consumed <= len,
                    "consumed {} of {len}",
                    progress.consumed
                );
                assert!(progress.key_updates <= progress.records);
                fed.records += progress.records;
                fed.key_updates += progress.key_updates;
                fed.key_update_requested |= progress.key_update_requested;
                fed.consumed += progress.consumed;
                buf.drain(..progress.consumed);
                if let Some(event) = progress.event {
                    assert!(progress.records >= 1);
                    assert!(reader.is_stopped());
                    fed.event = Some(event);
                    break;
                }
            }
        }
    }
    if fed.error.is_some() || fed.event.is_some() {
        let again = reader.process(&mut [23, 3, 3, 0, 0], &mut |_: &[u8]| {
            panic!("plaintext after a stop")
        });
        assert!(matches!(again, Err(RecordError::Closed)), "{again:?}");
    }
    fed
}
