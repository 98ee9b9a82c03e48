//! What the writer could not guarantee, handed to the runtime at exit so the
//! exit status and its message tell the truth.

use std::fmt;

use super::failure::WriteFailure;

/// One destination's shortfall. All zero for a destination that wrote and
/// synced everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DestinationLoss {
    pub name: String,
    /// Messages given up on at shutdown because the destination kept failing
    /// (a message cut by the failure counts as not written).
    pub not_written_messages: u64,
    /// Output bytes (in the destination's format) not written.
    pub not_written_bytes: u64,
    /// Messages written before an fsync that failed: they may not be on disk.
    pub unsynced_messages: u64,
    /// The last failure seen, for the message.
    pub reason: Option<WriteFailure>,
}

impl DestinationLoss {
    /// Counts a round handed to a destination that has given up.
    pub fn not_written(&mut self, messages: u64, bytes: usize) {
        self.not_written_messages += messages;
        self.not_written_bytes += bytes as u64;
    }

    pub fn is_clean(&self) -> bool {
        self.not_written_messages == 0 && self.not_written_bytes == 0 && self.unsynced_messages == 0
    }
}

/// The writer's result: one entry per destination, in config order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriterReport {
    pub destinations: Vec<DestinationLoss>,
}

impl WriterReport {
    /// True when every message handed to the writer is written and, per the
    /// fsync policy, synced.
    pub fn is_clean(&self) -> bool {
        self.destinations.iter().all(DestinationLoss::is_clean)
    }

    /// The pool's report from each writer's: per destination (same config
    /// order in every writer), the sum of what each writer could not
    /// guarantee, and the last reason any of them saw.
    pub fn merge(reports: impl IntoIterator<Item = WriterReport>) -> WriterReport {
        let mut merged = WriterReport::default();
        for r in reports {
            for (i, d) in r.destinations.into_iter().enumerate() {
                match merged.destinations.get_mut(i) {
                    None => merged.destinations.push(d),
                    Some(m) => {
                        debug_assert_eq!(
                            m.name, d.name,
                            "writers list destinations in config order"
                        );
                        m.not_written_messages += d.not_written_messages;
                        m.not_written_bytes += d.not_written_bytes;
                        m.unsynced_messages += d.unsynced_messages;
                        if d.reason.is_some() {
                            m.reason = d.reason;
                        }
                    }
                }
            }
        }
        merged
    }
}

impl fmt::Display for DestinationLoss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "destination {}:", self.name)?;
        if self.not_written_messages > 0 || self.not_written_bytes > 0 {
            write!(
                f,
                " {} messages ({} bytes) not written",
                self.not_written_messages, self.not_written_bytes
            )?;
        }
        if self.unsynced_messages > 0 {
            if self.not_written_messages > 0 || self.not_written_bytes > 0 {
                f.write_str(";")?;
            }
            write!(
                f,
                " {} messages may not be on disk (fsync failed)",
                self.unsynced_messages
            )?;
        }
        if let Some(r) = &self.reason {
            write!(f, " (last error: {r})")?;
        }
        Ok(())
    }
}

impl fmt::Display for WriterReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for d in self.destinations.iter().filter(|d| !d.is_clean()) {
            if !first {
                f.write_str("; ")?;
            }
            first = false;
            write!(f, "{d}")?;
        }
        if first {
            f.write_str("every message written")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loss(
        name: &str,
        not_written: u64,
        unsynced: u64,
        reason: Option<WriteFailure>,
    ) -> DestinationLoss {
        DestinationLoss {
            name: name.into(),
            not_written_messages: not_written,
            not_written_bytes: not_written * 10,
            unsynced_messages: unsynced,
            reason,
        }
    }

    /// Two writers, two destinations: the pool's report sums each
    /// destination over the writers, keeps config order, and stays clean
    /// only where every writer was clean.
    #[test]
    fn merged_report_sums_each_destination_over_the_writers() {
        let w0 = WriterReport {
            destinations: vec![
                loss("a", 0, 0, None),
                loss("b", 3, 1, Some(WriteFailure::NoSpace)),
            ],
        };
        let w1 = WriterReport {
            destinations: vec![loss("a", 0, 0, None), loss("b", 4, 0, None)],
        };
        let m = WriterReport::merge([w0, w1]);
        assert_eq!(m.destinations.len(), 2);
        assert!(m.destinations[0].is_clean());
        assert_eq!(m.destinations[0].name, "a");
        let b = &m.destinations[1];
        assert_eq!(
            (
                b.name.as_str(),
                b.not_written_messages,
                b.not_written_bytes,
                b.unsynced_messages
            ),
            ("b", 7, 70, 1)
        );
        assert_eq!(
            b.reason,
            Some(WriteFailure::NoSpace),
            "a later writer without a reason keeps it"
        );
        assert!(!m.is_clean());
        assert!(WriterReport::merge([WriterReport::default()]).is_clean());
    }

    #[test]
    fn report_names_what_was_not_written_and_what_may_not_be_on_disk() {
        let r = WriterReport {
            destinations: vec![
                DestinationLoss {
                    name: "ok".into(),
                    ..Default::default()
                },
                DestinationLoss {
                    name: "messages".into(),
                    not_written_messages: 3,
                    not_written_bytes: 120,
                    unsynced_messages: 7,
                    reason: Some(WriteFailure::NoSpace),
                },
            ],
        };
        assert!(!r.is_clean());
        assert_eq!(
            r.to_string(),
            "destination messages: 3 messages (120 bytes) not written; \
             7 messages may not be on disk (fsync failed) \
             (last error: no space left on device)"
        );
    }
}
