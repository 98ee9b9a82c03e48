//! The one plan built from a config: every check and every TLS setting,
//! built once, shared by `check-config`, `serve` and reload. A config that
//! `check-config` accepts is one `serve` starts with (short of ports in use
//! and output files that cannot be opened, which only binding and opening
//! can tell).
//!
//! Each source's plan also makes its connections ([`SourcePlan::new_conn`]),
//! so the shard reads no config field to accept one.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::batch::ConnMeta;
use crate::config::{Config, SourceConfig, Transport};
use crate::conn::{Conn, KtlsPlan};
use crate::framing::Decoder;
use crate::ktls::{check_mode_at_startup, KtlsSupport};
use crate::shard::per_ip::PerIpCounts;
use crate::stats::Stats;
use crate::tls::ServerConfigCell;

/// One source, ready to accept connections.
pub struct SourcePlan {
    pub config: SourceConfig,
    /// The TLS server config, swapped whole on reload (see tls/reload.rs).
    pub tls: Option<ServerConfigCell>,
    /// Open connections per peer address, for `max_connections_per_ip`.
    pub per_ip: PerIpCounts,
}

impl SourcePlan {
    fn build(config: &SourceConfig) -> Result<SourcePlan, String> {
        let tls = match (&config.transport, &config.tls) {
            (Transport::Tls, Some(settings)) => Some(
                ServerConfigCell::new(settings.clone())
                    .map_err(|e| format!("source {}: {e}", config.name))?,
            ),
            _ => None,
        };
        Ok(SourcePlan {
            config: config.clone(),
            tls,
            per_ip: PerIpCounts::new(config.max_connections_per_ip),
        })
    }

    /// A new connection of this source: its framing decoder with the
    /// source's limits, and TLS with the config in force now.
    pub fn new_conn(
        &self,
        meta: Arc<ConnMeta>,
        ktls: &Arc<KtlsSupport>,
    ) -> Result<Conn, rustls::Error> {
        let decoder = Decoder::new(
            self.config.framing,
            self.config.max_message_bytes,
            self.config.oversize,
        );
        match &self.tls {
            Some(tls) => Conn::new_tls(
                tls.current(),
                meta,
                decoder,
                KtlsPlan {
                    mode: self.config.ktls,
                    support: Arc::clone(ktls),
                },
            ),
            None => Ok(Conn::new_plain(meta, decoder)),
        }
    }
}

/// Every source's plan and what the kernel offers, built once.
pub struct Plan {
    pub config: Config,
    pub sources: Vec<SourcePlan>,
    /// What this kernel can offload, probed once.
    pub ktls: Arc<KtlsSupport>,
}

impl Plan {
    /// Builds every TLS setting (reads certificates, keys, CAs and CRLs),
    /// and checks that the kernel offers what `ktls = "on"` asks for.
    pub fn build(config: Config) -> Result<Plan, String> {
        let ktls = KtlsSupport::shared();
        log::info!("{ktls}");
        for s in config
            .sources
            .iter()
            .filter(|s| s.transport == Transport::Tls)
        {
            check_mode_at_startup(s.ktls, &ktls).map_err(|e| format!("source {}: {e}", s.name))?;
        }
        let sources = config
            .sources
            .iter()
            .map(SourcePlan::build)
            .collect::<Result<Vec<_>, _>>()?;
        // Destinations that load files or check settings: do it now, so
        // check-config and start-up fail the same way (the writer builds
        // the same again when it opens the destination).
        for d in &config.destinations {
            match d.kind {
                crate::config::DestinationType::Forward => {
                    crate::writer::forward::ForwardPlan::build(d)?;
                }
                #[cfg(feature = "kafka")]
                crate::config::DestinationType::Kafka => {
                    crate::writer::kafka::settings::client_config(d)?;
                }
                _ => {}
            }
        }
        Ok(Plan {
            config,
            sources,
            ktls,
        })
    }
}

/// What the shards share while serving: the plan, stats and the flags.
/// Read-only after start-up, except the flags and stats.
pub struct Shared {
    pub config: Config,
    pub sources: Vec<SourcePlan>,
    pub stats: Arc<Stats>,
    pub shutdown: AtomicBool,
    /// Set when a shard thread ends other than by shutdown (a panic outside
    /// any connection's guard): the process stops, non-zero.
    pub shard_failed: AtomicBool,
    pub ktls: Arc<KtlsSupport>,
}

impl Shared {
    pub fn new(plan: Plan, stats: Arc<Stats>) -> Shared {
        Shared {
            config: plan.config,
            sources: plan.sources,
            stats,
            shutdown: AtomicBool::new(false),
            shard_failed: AtomicBool::new(false),
            ktls: plan.ktls,
        }
    }
}
