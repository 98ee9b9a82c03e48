//! A source's server config, swapped whole on SIGHUP.
//!
//! A reload is "build again from the same settings" (`build_server_config`
//! is a pure function of the settings and the files), with one rule that
//! needs the config in force: a `crl_dir` that held CRLs and is now empty
//! (a CRL publisher caught between delete and write, a mount gone) would
//! turn revocation off without a word, so that reload is refused and the
//! old config, CRLs included, stays in force. At start-up an empty
//! `crl_dir` only warns, as in syslog-ng.
//!
//! Handshakes that start after a swap use the new config; established
//! connections keep the one they started with.

use std::sync::{Arc, RwLock};

use rustls::ServerConfig;

use super::error::TlsConfigError;
use super::server_config::{build, Built};
use super::settings::TlsSettings;

pub struct ServerConfigCell {
    settings: TlsSettings,
    current: RwLock<Built>,
}

impl ServerConfigCell {
    /// Builds the first config (start-up).
    pub fn new(settings: TlsSettings) -> Result<ServerConfigCell, TlsConfigError> {
        let built = build(&settings)?;
        Ok(ServerConfigCell {
            settings,
            current: RwLock::new(built),
        })
    }

    /// The config for a handshake starting now.
    pub fn current(&self) -> Arc<ServerConfig> {
        // A poisoned lock still holds a whole config: the writer only
        // assigns a finished `Built`.
        match self.current.read() {
            Ok(g) => Arc::clone(&g.config),
            Err(p) => Arc::clone(&p.into_inner().config),
        }
    }

    /// Rebuilds from the files on disk; on error the old config stays in
    /// force (the caller logs it and counts a reload error).
    pub fn reload(&self) -> Result<(), TlsConfigError> {
        let built = build(&self.settings)?;
        let mut current = match self.current.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(path) = &self.settings.crl_dir {
            if built.crl_dir_crls == 0 && current.crl_dir_crls > 0 {
                return Err(TlsConfigError::CrlDirEmptied {
                    path: path.clone(),
                    crls_in_force: current.crl_dir_crls,
                });
            }
        }
        *current = built;
        Ok(())
    }
}
