//! A forward destination's settings, checked and built once: the parsed
//! server list and the TLS client config. `Plan::build` (start-up and
//! `check-config`) builds it, so a missing CA file fails both the same way,
//! and hands it to the writers ([`ForwardPlans`]): opening the destination
//! reads no file again. SIGHUP reloads the TLS files ([`TlsPlan::reload`]).

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::ClientConfig;

use super::addr::ServerAddr;
use crate::config::{DestinationConfig, DiskBufferConfig, ForwardFraming, Transport};
use crate::conn::KtlsPlan;
use crate::ktls::{check_mode_at_startup, KtlsMode, KtlsSupport};
use crate::tls::{build_client_config, server_name_for, ClientTlsConfig, TlsConfigError};

/// The TLS client config and, for each server, the name its certificate must carry.
#[derive(Clone)]
pub struct TlsPlan {
    pub config: Arc<ClientConfig>,
    pub names: Vec<ServerName<'static>>,
    /// The table, to build the config again on SIGHUP.
    pub settings: ClientTlsConfig,
    /// `ktls` and what this kernel offers, for each connection's handoff.
    pub ktls: KtlsPlan,
}

impl TlsPlan {
    /// SIGHUP: reads the files again. On error the config in force stays.
    pub fn reload(&mut self) -> Result<(), TlsConfigError> {
        self.config = client_config(&self.settings, self.ktls.mode)?;
        Ok(())
    }
}

/// The client config; rustls lets the keys out for kTLS only when asked
/// to at build time, so that is done unless `ktls = "off"`.
fn client_config(
    settings: &ClientTlsConfig,
    ktls: KtlsMode,
) -> Result<Arc<ClientConfig>, TlsConfigError> {
    let config = build_client_config(settings)?;
    if ktls == KtlsMode::Off {
        return Ok(config);
    }
    let mut config = Arc::unwrap_or_clone(config);
    config.enable_secret_extraction = true;
    Ok(Arc::new(config))
}

#[derive(Clone)]
pub struct ForwardPlan {
    pub name: String,
    pub servers: Vec<ServerAddr>,
    pub tls: Option<TlsPlan>,
    pub framing: ForwardFraming,
    pub connections: usize,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    pub connect_timeout: Duration,
    pub confirm_window: Duration,
    pub forward_identity: bool,
    pub disk_buffer: Option<DiskBufferConfig>,
}

impl ForwardPlan {
    pub fn build(cfg: &DestinationConfig) -> Result<ForwardPlan, String> {
        let at = |e: String| format!("destination {}: {e}", cfg.name);
        let servers = cfg
            .servers
            .iter()
            .map(|s| ServerAddr::parse(s).map_err(|e| at(format!("servers: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let tls = match (cfg.transport, &cfg.tls) {
            (Transport::Tls, Some(t)) => {
                // Probed once per process (the sources' probe); `on`
                // refuses to start here, so check-config says it too.
                let support = KtlsSupport::shared();
                check_mode_at_startup(cfg.ktls, &support).map_err(at)?;
                let config = client_config(t, cfg.ktls).map_err(|e| at(format!("tls: {e}")))?;
                let names = servers
                    .iter()
                    .map(|s| {
                        server_name_for(t, &s.host).map_err(|e| {
                            at(format!("tls: server name for {s}: {e}; set server_name"))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Some(TlsPlan {
                    config,
                    names,
                    settings: t.clone(),
                    ktls: KtlsPlan {
                        mode: cfg.ktls,
                        support,
                    },
                })
            }
            (Transport::Tls, None) => {
                return Err(at("transport = \"tls\" needs [destination.tls]".into()))
            }
            (Transport::Tcp, _) => None,
        };
        Ok(ForwardPlan {
            name: cfg.name.clone(),
            servers,
            tls,
            framing: cfg.framing,
            connections: cfg.connections.max(1),
            reconnect_min: Duration::from_millis(cfg.reconnect_min_ms.max(1)),
            reconnect_max: Duration::from_millis(
                cfg.reconnect_max_ms.max(cfg.reconnect_min_ms.max(1)),
            ),
            connect_timeout: Duration::from_millis(cfg.connect_timeout_ms),
            confirm_window: Duration::from_millis(cfg.confirm_ms),
            forward_identity: cfg.forward_identity,
            disk_buffer: cfg.disk_buffer.clone(),
        })
    }

    /// This plan for one writer of the destination, whose share of the
    /// destination's config is `cfg` (`pool::per_writer` gives each writer
    /// a folder and a share of the disk buffer); the rest, TLS included,
    /// is as built.
    pub fn for_writer(&self, cfg: &DestinationConfig) -> ForwardPlan {
        ForwardPlan {
            disk_buffer: cfg.disk_buffer.clone(),
            ..self.clone()
        }
    }
}

/// Each destination's [`ForwardPlan`], by config index (`None` for the
/// other kinds). Built once per config load, by `Plan::build` (collected
/// in config order); the writers open their forward destinations from it.
#[derive(Clone, Default)]
pub struct ForwardPlans(Vec<Option<ForwardPlan>>);

impl FromIterator<Option<ForwardPlan>> for ForwardPlans {
    fn from_iter<I: IntoIterator<Item = Option<ForwardPlan>>>(plans: I) -> Self {
        ForwardPlans(plans.into_iter().collect())
    }
}

impl ForwardPlans {
    /// The plan of destination `d` (config index), if it forwards.
    pub fn get(&self, d: usize) -> Option<&ForwardPlan> {
        self.0.get(d)?.as_ref()
    }
}
