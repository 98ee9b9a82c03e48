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
use crate::config::{Config, DestinationType, SourceConfig, Transport};
use crate::conn::{Conn, KtlsPlan};
use crate::framing::Decoder;
use crate::ktls::{check_mode_at_startup, KtlsSupport};
use crate::shard::per_ip::PerIpCounts;
use crate::stats::Stats;
use crate::tls::ServerConfigCell;
use crate::writer::forward::{ForwardPlan, ForwardPlans};

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
    /// Each forward destination's plan (TLS files read), which the writers
    /// open their forward destinations from.
    pub forwards: ForwardPlans,
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
        // check-config and start-up fail the same way. A forward plan is
        // built here only: the writers open from it.
        let forwards = config
            .destinations
            .iter()
            .map(|d| match d.kind {
                DestinationType::Forward => ForwardPlan::build(d).map(Some),
                #[cfg(feature = "kafka")]
                DestinationType::Kafka => {
                    crate::writer::kafka::settings::client_config(d).map(|_| None)
                }
                _ => Ok(None),
            })
            .collect::<Result<ForwardPlans, String>>()?;
        Ok(Plan {
            config,
            sources,
            forwards,
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

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use super::*;
    use crate::batch::{Ring, WriterWaker};
    use crate::writer::sys::RealFs;
    use crate::writer::{Writer, WriterControl};

    /// A forward destination's TLS files are read once per config load,
    /// by `Plan::build`: the writers open the destination from that plan,
    /// so a CA file gone since does not fail their open (building the plan
    /// again does: it reads the file).
    #[test]
    fn writers_open_a_forward_destination_from_the_plan_without_reading_its_files() {
        let dir = std::env::temp_dir().join(format!("ringest-plan-{}", std::process::id()));
        let ca = testkit::Ca::new("plan test CA").write(&dir.join("ca.pem"));
        let text = format!(
            "[[source]]\nname = \"in\"\nlisten = \"127.0.0.1:1\"\ntransport = \"tcp\"\n\
             [[destination]]\nname = \"up\"\ntype = \"forward\"\nservers = [\"127.0.0.1:6514\"]\n\
             [destination.tls]\nca_file = \"{}\"\n",
            ca.display()
        );
        let load = || Config::from_toml(&text, Path::new("t.toml"), &dir).expect("config");
        let plan = Plan::build(load()).expect("plan");
        assert!(plan.forwards.get(0).is_some_and(|f| f.tls.is_some()));
        std::fs::remove_file(&ca).expect("remove the CA file");
        let again = Plan::build(load()).err();
        let open = |forwards: &ForwardPlans| {
            let stats = Stats::new(vec!["in".into()]).with_destinations(vec!["up".into()]);
            Writer::with_fs(
                RealFs,
                &plan.config,
                forwards,
                vec![Arc::new(Ring::new(4))],
                Arc::new(stats),
                Arc::new(WriterWaker::new()),
                Arc::new(WriterControl::default()),
            )
            .map(|_| ())
        };
        let from_plan = open(&plan.forwards);
        let without = open(&ForwardPlans::default());
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            again
                .as_deref()
                .is_some_and(|e| e.contains("destination up")),
            "a new plan reads the CA file: {again:?}"
        );
        assert!(from_plan.is_ok(), "{from_plan:?}");
        let e = without.expect_err("a forward destination needs its plan");
        assert!(e.to_string().contains("no forward plan"), "{e}");
    }
}
